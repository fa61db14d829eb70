"""Serving the generator through llama.cpp (xllamacpp), and writing a LoRA fine-tune back to GGUF.

Why: on a 2-core CPU transformers decodes a 135M model at ~15 tok/s, llama.cpp at ~100+ (docs/MODELS.md). A
LoRA fine-tune reaches llama.cpp only as a GGUF file, so `export_merged_gguf` merges the adapter into the base
GGUF's weights:

    W' = dequant(W_base) + (alpha / r) · B @ A          (per adapted linear layer, HF layout (out, in))

then writes W' as Q8_0 (re-quantizing to the base's Q4_1 grid would snap most of the fine-tune back; Q8_0 keeps it
at the base's speed). Two details decide correctness: llama.cpp stores the q/k rows of llama-architecture models
in an interleaved rotary order, so the q/k deltas are row-permuted exactly as llama.cpp's converter permutes HF
weights; and every metadata key (architecture, hyper-parameters, tokenizer, chat template) is copied from the base
file (a tokenizer re-derived from the converted checkpoint is broken).

`LlamaCppEngine.stream` decodes greedily with no repeated 3-gram in the continuation, exactly: llama.cpp streams
greedy tokens; when a token would repeat a 3-gram of the continuation, the stream is cancelled, one token is
decoded with the offending tokens banned (logit bias -inf), and streaming resumes from the cached prefix.
"""
from __future__ import annotations

import codecs
import functools
import queue
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecrs.errors import EcrsError

__all__ = ["LlamaCppEngine", "banned_next", "export_merged_gguf", "hf_to_gguf_name", "read_gguf"]

_HF_TO_GGUF = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}
_LORA_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+_proj)\.lora_([AB])(?:\.\w+)?\.weight$")


# ---------------------------------------------------------------------------------------------------------------
# GGUF write-back
# ---------------------------------------------------------------------------------------------------------------

def hf_to_gguf_name(layer: int, module: str) -> str:
    """`(3, "q_proj")` -> `blk.3.attn_q.weight`."""
    return f"blk.{layer}.{_HF_TO_GGUF[module]}.weight"


def _rope_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF (out, in) rows -> llama.cpp's interleaved rotary row order (convert_hf_to_gguf's `permute`)."""
    out = w.shape[0]
    return w.reshape(n_head, 2, out // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)  # (out, in)


def lora_deltas(lora_state: Mapping[str, Any], scale: float) -> dict[tuple[int, str], np.ndarray]:
    """peft LoRA state -> {(layer, module): scale · B @ A} as float32 (out, in), HF row order."""
    parts: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for key, value in lora_state.items():
        m = _LORA_KEY.search(key)
        if m is None:
            continue
        if m.group(2) not in _HF_TO_GGUF:
            raise EcrsError(f"LoRA on {m.group(2)!r} cannot be written to GGUF (known: {', '.join(_HF_TO_GGUF)})")
        arr = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, np.float32)
        parts.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = arr
    deltas = {}
    for k, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise EcrsError(f"LoRA state of layer {k[0]} {k[1]} lacks lora_A or lora_B")
        deltas[k] = (scale * ab["B"] @ ab["A"]).astype(np.float32)  # (out, r) @ (r, in) -> (out, in)
    return deltas


def read_gguf(path: str | Path):
    """A parsed GGUF file (memory-mapped), cached per (path, size, mtime): parsing SmolLM2's 49k-token vocabulary
    takes seconds."""
    p = Path(path).resolve()
    st = p.stat()
    return _read_gguf(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_gguf(path: str, size: int, mtime: int):
    import gguf

    return gguf.GGUFReader(path)


def export_merged_gguf(base: str | Path, lora_state: Mapping[str, Any], scale: float, out: str | Path,
                       qtype: str = "Q8_0") -> Path:
    """Write `base` with the LoRA deltas merged in; adapted tensors as `qtype` (Q8_0, Q5_1, F16 or F32), every
    other tensor and every metadata key copied unchanged. `scale` = lora_alpha / r. Q5_1 (6 bits a weight against
    Q8_0's 8.5) decodes faster on memory-bound CPUs and keeps more of the fine-tune than the base's Q4_1 grid."""
    import gguf

    types = {"Q8_0": gguf.GGMLQuantizationType.Q8_0, "Q5_1": gguf.GGMLQuantizationType.Q5_1,
             "F16": gguf.GGMLQuantizationType.F16, "F32": gguf.GGMLQuantizationType.F32}
    target = types.get(qtype)
    if target is None:
        raise EcrsError(f"qtype {qtype!r} is not one of {', '.join(types)}")
    reader = read_gguf(base)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    if arch not in ("llama",):
        # q/k permutation below is llama's; other architectures (qwen2) store q/k in HF order.
        permute = False
    else:
        permute = True
    n_head = int(reader.get_field(f"{arch}.attention.head_count").contents())
    n_kv = int(reader.get_field(f"{arch}.attention.head_count_kv").contents())
    deltas = {hf_to_gguf_name(layer, mod): (mod, d) for (layer, mod), d in lora_deltas(lora_state, scale).items()}
    if not deltas:
        raise EcrsError("no LoRA weights found in the adapter state")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    for kv in reader.fields.values():
        if kv.name == gguf.Keys.General.ARCHITECTURE or kv.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        vtype = kv.types[0]
        sub = kv.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = kv.contents()
        if kv.name == gguf.Keys.General.FILE_TYPE and qtype in ("Q8_0", "Q5_1"):
            value = int(getattr(gguf.LlamaFileType, f"MOSTLY_{qtype}"))
        writer.add_key_value(kv.name, value, vtype, sub_type=sub)
    written = set()
    for t in reader.tensors:
        if t.name in deltas:
            mod, d = deltas[t.name]
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)  # (out, in)
            if permute and mod in ("q_proj", "k_proj"):
                d = _rope_permute(d, n_head if mod == "q_proj" else n_kv)
            if w.shape != d.shape:
                raise EcrsError(f"{t.name}: LoRA delta {d.shape} does not fit the base tensor {w.shape}")
            merged = w + d
            if qtype == "F32":
                writer.add_tensor(t.name, merged)
            elif qtype == "F16":
                writer.add_tensor(t.name, merged.astype(np.float16))
            else:
                writer.add_tensor(t.name, gguf.quants.quantize(merged, target), raw_dtype=target)
            written.add(t.name)
        else:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    missing = set(deltas) - written
    if missing:
        raise EcrsError(f"adapter tensors not in the base GGUF: {sorted(missing)[:3]}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Decoding through llama.cpp
# ---------------------------------------------------------------------------------------------------------------

def banned_next(ids: list[int], n: int = 3) -> set[int]:
    """Tokens that would complete an n-gram already present in `ids` (HF's no_repeat_ngram_size rule)."""
    if len(ids) < n - 1:
        return set()
    prefix = tuple(ids[len(ids) - n + 1:])
    return {ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i:i + n - 1]) == prefix}


@dataclass
class DecodeStats:
    tokens: int = 0
    restarts: int = 0  # streams cancelled to ban a repeated 3-gram
    ids: list[int] = field(default_factory=list)  # the continuation's token ids


class LlamaCppEngine:
    """One GGUF model in an in-process llama.cpp server (xllamacpp). Build with `LlamaCppEngine.open(path)`.

    Not thread-safe for concurrent `stream` calls (one slot); callers serialise requests.
    """

    def __init__(self, server: Any, path: Path):
        self.server = server
        self.path = path
        self.last = DecodeStats()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, n_threads: int = 2, n_ctx: int = 2048) -> LlamaCppEngine:
        try:
            import xllamacpp as xlc
        except ModuleNotFoundError:
            raise EcrsError("llama.cpp runtime missing: pip install xllamacpp (the `serve` extra)") from None
        path = Path(path)
        if not path.exists():
            raise EcrsError(f"{path}: GGUF file not found")
        params = xlc.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = 1
        # llama.cpp's server keeps past prompts' KV in host RAM for reuse (default up to 8 GiB): each reply's prompt
        # differs, so it only grew the server by ~2.5 MB a turn (RSS 1.1 -> 1.8 GB over 250 turns). The one
        # slot's own prefix reuse (cache_prompt) stays on.
        params.cache_ram_mib = 0
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.verbosity = -1
        server = xlc.Server(params)
        return cls(server, path)

    def complete_raw(self, request: dict[str, Any]) -> dict[str, Any]:
        """One non-streamed llama.cpp completion (OpenAI-style request), e.g. for speed measurements."""
        with self._lock:
            return self.server.handle_completions(request)

    def greedy_ids(self, prompt: str, max_tokens: int) -> list[int]:
        """Plain greedy token ids (no n-gram rule, EOS ends), for comparing runtimes token by token."""
        r = self.complete_raw({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "n_probs": 1,
                               "cache_prompt": False})
        content = (r["choices"][0].get("logprobs") or {}).get("content") or []
        return [int(c["id"]) for c in content if c["bytes"]]  # an end-of-generation token renders no bytes

    def decode_speed(self, prompt: str, n_tokens: int = 128) -> float:
        """llama.cpp's own decode rate (tokens/s after the prompt) for `n_tokens` forced tokens."""
        r = self.complete_raw({"prompt": prompt, "max_tokens": n_tokens, "temperature": 0.0, "ignore_eos": True,
                               "cache_prompt": False})
        return float(r["timings"]["predicted_per_second"])

    def stream(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
               stop_at_newline: bool = True) -> Iterator[str]:
        """Greedy continuation of `prompt` in text pieces; no repeated `no_repeat_ngram`-gram within the
        continuation (0 = off); ends at an end-of-generation token, `max_tokens`, or a newline."""
        pieces: queue.Queue = queue.Queue()
        cancel = threading.Event()
        done = object()

        def work() -> None:
            try:
                with self._lock:
                    self._decode(prompt, max_tokens, no_repeat_ngram, stop_at_newline, pieces.put, cancel)
            except Exception as e:  # noqa: BLE001 - re-raised in the consumer's thread
                pieces.put(e)
            finally:
                pieces.put(done)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            while True:
                item = pieces.get()
                if item is done:
                    break
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            cancel.set()  # the consumer stopped early: end the llama.cpp stream at its next token
            worker.join()

    def generate(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
                 stop_at_newline: bool = True) -> str:
        return "".join(self.stream(prompt, max_tokens, no_repeat_ngram, stop_at_newline))

    def _decode(self, prompt: str, max_tokens: int, n: int, stop_at_newline: bool, emit, cancel) -> None:
        ids: list[int] = []
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stats = DecodeStats()
        ban: set[int] = set()
        finished = False
        while not finished and len(ids) < max_tokens and not cancel.is_set():
            request: dict[str, Any] = {
                "prompt": [prompt, *ids] if ids else prompt,
                "max_tokens": 1 if ban else max_tokens - len(ids),
                "temperature": 0.0, "n_probs": 1, "stream": True, "cache_prompt": True,
            }
            if ban:
                request["logit_bias"] = [[t, False] for t in sorted(ban)]
            state = {"hit": set(), "end": False}

            def on_chunk(chunk: dict[str, Any], state: dict[str, Any] = state) -> bool:
                if "choices" not in chunk:
                    raise EcrsError(f"llama.cpp error: {chunk}")
                choice = chunk["choices"][0]
                for entry in (choice.get("logprobs") or {}).get("content") or []:
                    tok = int(entry["id"])
                    if not entry["bytes"]:  # a control token (end of generation): llama.cpp stops after it
                        state["end"] = True
                        return True
                    blocked = banned_next(ids, n) if n > 0 else set()
                    if tok in blocked:
                        state["hit"] = blocked
                        return True
                    ids.append(tok)
                    stats.tokens += 1
                    text = utf8.decode(bytes(entry["bytes"]))
                    if stop_at_newline and "\n" in text:
                        head = text.split("\n", 1)[0]
                        if head:
                            emit(head)
                        state["end"] = True
                        return True
                    if text:
                        emit(text)
                    if len(ids) >= max_tokens:
                        return True
                if choice.get("finish_reason") == "stop":  # EOS or a stop word; "length" is our budget
                    state["end"] = True
                return cancel.is_set()

            self.server.handle_completions(request, on_chunk)
            if state["end"]:
                finished = True
            elif state["hit"]:
                ban = state["hit"]
                stats.restarts += 1
            else:
                ban = set()
        tail = utf8.decode(b"", final=True)
        if tail:
            emit(tail)
        stats.ids = ids
        self.last = stats
