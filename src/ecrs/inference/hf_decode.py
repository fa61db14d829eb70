"""Generation with a transformers causal LM: the fallback when llama.cpp or the exported GGUF is missing, and
the reference the GGUF write-back is tested against.

Same decoding contract as `LlamaCppEngine`: greedy, no repeated n-gram within the continuation (the prompt is not
counted, so the reply may copy a multi-token name from its knowledge), stop at end-of-generation, `max_tokens`
or a newline; `stream` yields text pieces whose concatenation is `generate`'s result.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecrs.errors import EcrsError
from ecrs.inference.llama import banned_next

__all__ = ["HFEngine", "load_causal_lm"]


def load_causal_lm(base: str | Path, adapter: str | Path | None = None, dtype: str = "float32"):
    """(model, tokenizer) from an HF model directory or a `.gguf` file (dequantized to fp32 by transformers),
    optionally with a peft LoRA adapter directory; the tokenizer pads with EOS (the GGUF conversion has no pad)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = Path(base)
    if not base.exists():
        raise EcrsError(f"{base}: model not found (an HF model directory or a .gguf file)")
    kw: dict[str, Any] = {"gguf_file": base.name} if base.suffix == ".gguf" else {}
    where = base.parent if base.suffix == ".gguf" else base
    tok = AutoTokenizer.from_pretrained(where, **kw)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model, tok


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

    def stream(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
               stop_at_newline: bool = True) -> Iterator[str]:
        import torch

        input_ids = torch.tensor([self.tok(prompt, add_special_tokens=False).input_ids])  # (1, T)
        ids: list[int] = []
        emitted = ""
        past = None
        with torch.no_grad():
            step_input = input_ids
            for _ in range(max_tokens):
                out = self.model(input_ids=step_input, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1].float()  # (V,)
                for t in banned_next(ids, no_repeat_ngram) if no_repeat_ngram > 0 else ():
                    logits[t] = float("-inf")
                tok = int(torch.argmax(logits))
                if tok in self.eog_ids:
                    break
                ids.append(tok)
                text = self.tok.decode(ids, skip_special_tokens=False)
                if text.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for the next token
                    step_input = torch.tensor([[tok]])
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
                step_input = torch.tensor([[tok]])

    def generate(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
                 stop_at_newline: bool = True) -> str:
        return "".join(self.stream(prompt, max_tokens, no_repeat_ngram, stop_at_newline))

    def greedy_ids(self, prompt: str, max_tokens: int, no_repeat_ngram: int = 0) -> list[int]:
        """Greedy token ids (for comparing runtimes token by token)."""
        import torch

        input_ids = torch.tensor([self.tok(prompt, add_special_tokens=False).input_ids])
        ids: list[int] = []
        past = None
        step = input_ids
        with torch.no_grad():
            for _ in range(max_tokens):
                out = self.model(input_ids=step, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1].float()
                for t in banned_next(ids, no_repeat_ngram) if no_repeat_ngram > 0 else ():
                    logits[t] = float("-inf")
                tok = int(torch.argmax(logits))
                if tok in self.eog_ids:
                    break
                ids.append(tok)
                step = torch.tensor([[tok]])
        return ids
