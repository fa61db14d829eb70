"""Generation with a transformers causal LM: the fallback when llama.cpp or the exported GGUF is missing, and
the reference the GGUF write-back is tested against.

Same decoding contract as `LlamaCppEngine`: greedy, no repeated n-gram within the continuation (the prompt is not
counted, so the reply may copy a multi-token name from its knowledge), stop at end-of-generation, `max_tokens`
or a newline; `stream` yields text pieces whose concatenation is `generate`'s result.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ecrs.data.bundle import REPO_ROOT
from ecrs.errors import EcrsError
from ecrs.inference.llama import banned_next

__all__ = ["HFEngine", "load_causal_lm"]


def load_causal_lm(base: str | Path, adapter: str | Path | None = None, dtype: str = "float32",
                   cache_dir: str | Path | None = None):
    """(model, tokenizer) from an HF model directory or a `.gguf` file, optionally with a peft LoRA adapter
    directory; the tokenizer pads with EOS (the GGUF conversion has no pad token).

    transformers converts a GGUF slowly (tokenizer rebuilt from 49k tokens, every tensor dequantized: ~10-20 s of
    CPU), so the converted checkpoint is saved once under `cache_dir` (default `artifacts/cache/hf/`) and loaded
    from there afterwards (about a second)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = Path(base)
    if not base.exists():
        raise EcrsError(f"{base}: model not found (an HF model directory or a .gguf file)")
    where, kw = base, {}
    if base.suffix == ".gguf":
        cache = Path(cache_dir) if cache_dir else REPO_ROOT / "artifacts" / "cache" / "hf"
        where = cache / f"{base.stem}-{base.stat().st_size}"
        if not (where / "config.json").exists():
            _convert_gguf(base, where)
    tok = AutoTokenizer.from_pretrained(where, **kw)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model, tok


def _convert_gguf(gguf_file: Path, out: Path) -> None:
    """GGUF -> an fp32 HF checkpoint (written to a temporary folder, then renamed: safe under concurrency)."""
    import shutil
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_file.name}
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **kw)
    # transformers 5 refuses to save a model loaded from GGUF until its quantizer marker is cleared (MODELS.md).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".tmp-"))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)


def eog_token_ids(tok) -> set[int]:
    """End-of-turn ids: ChatML's <|im_end|> where the vocabulary has it (the GGUF-converted SmolLM2 tokenizer
    names <|im_start|> as its EOS, so its `eos_token_id` alone is wrong), `<|endoftext|>`, and the EOS."""
    ids = set()
    for t in ("<|im_end|>", "<|endoftext|>"):
        i = tok.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != tok.unk_token_id:
            ids.add(i)
    if not ids and tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    return ids


class HFEngine:
    def __init__(self, model, tokenizer):
        self.model = model
        self.tok = tokenizer
        self.eog_ids = eog_token_ids(tokenizer)

    @classmethod
    def open(cls, base: str | Path, adapter: str | Path | None = None) -> HFEngine:
        return cls(*load_causal_lm(base, adapter))

    def _tokens(self, prompt: str, max_tokens: int, no_repeat_ngram: int) -> Iterator[int]:
        """Greedy token ids with a KV cache; EOS ends; no repeated n-gram within the continuation."""
        import torch

        step = torch.tensor([self.tok(prompt, add_special_tokens=False).input_ids])  # (1, T)
        cache_kw = self._cache_keyword()
        ids: list[int] = []
        cache = None
        with torch.no_grad():
            for _ in range(max_tokens):
                out = self.model(input_ids=step, use_cache=True, **{cache_kw: cache})
                cache = getattr(out, cache_kw)
                logits = out.logits[0, -1].float()  # (V,)
                for t in banned_next(ids, no_repeat_ngram) if no_repeat_ngram > 0 else ():
                    logits[t] = float("-inf")
                tok = int(torch.argmax(logits))
                if tok in self.eog_ids:
                    return
                ids.append(tok)
                yield tok
                step = torch.tensor([[tok]])  # (1, 1)

    def _cache_keyword(self) -> str:
        """transformers 5 names the KV cache `cache`; 4.x `past_key_values`."""
        import inspect

        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"

    def stream(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
               stop_at_newline: bool = True) -> Iterator[str]:
        ids: list[int] = []
        emitted = ""
        for tok in self._tokens(prompt, max_tokens, no_repeat_ngram):
            ids.append(tok)
            text = self.tok.decode(ids, skip_special_tokens=False)
            if text.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for the next token
                continue
            piece = text[len(emitted):]
            if stop_at_newline and "\n" in piece:
                head = piece.split("\n", 1)[0]
                if head:
                    yield head
                return
            if piece:
                emitted = text
                yield piece

    def generate(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
                 stop_at_newline: bool = True) -> str:
        return "".join(self.stream(prompt, max_tokens, no_repeat_ngram, stop_at_newline))

    def greedy_ids(self, prompt: str, max_tokens: int, no_repeat_ngram: int = 0) -> list[int]:
        """Greedy token ids (for comparing runtimes token by token)."""
        return list(self._tokens(prompt, max_tokens, no_repeat_ngram))
