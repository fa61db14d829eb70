"""Stance per mention: what the person said about each movie, person or genre a message names (issue 24).

    clf = StanceClassifier.load("artifacts/stance")
    clf.predict("loved Titanic but no horror please", [Span(6, 13, "movie"), Span(21, 27, "genre")])
    # [("liked", 0.93), ("avoid", 0.88)]

The model is a multinomial logistic regression over sparse features of one mention in its message. Names never
reach it: the mention becomes `TGT` and every other named movie or person `OTH`, so "The *Great* Gatsby" is not
praise and a title's words are not learned as opinions. What decides a stance is where the words stand relative to
the mention, so the features are read around it:

- the words of the mention's clause, left and right of it (clauses end at . ! ? ; , : and before contrast words:
  "loved X *but* hated Y" gives X and Y separate clauses), with negation marked (`NEG_like` for "don't like")
  up to the clause end or "and" / "so";
- the two words on each side, and the mention's kind (movie, person, genre, or `reply` for "seen it, loved it"
  about the movie just suggested) crossed with the clause's words (a person "with" is wanted, a genre "no" avoided);
- the polarity of the clause's words in the VADER lexicon (`c:POL+`, `c:NEG_POL+` for "not good"), so an opinion
  word seen once in training still counts (ReDial's seekers name only ~200 disliked movies in training);
- the next clause's words when it points back ("I watched X. *But I didn't like it.*"); whether the clause opens
  with or is followed by a contrast; the whole message's words, weakly.

Where no stance reaches `UNSURE`, the kind's prior answers (`PRIOR`). One message takes ~0.1 ms on one core (pure
Python features plus a sparse dot product, benchmarks/results/stance.json); the weights are a vocabulary (JSON) and
a matrix (NumPy), so no pickle and no scikit-learn at serving time.

`EncoderStanceClassifier`, the default since 2026-12-07, reads the same masked message with a fine-tuned MiniLM-L6
(all-MiniLM-L6-v2): the target stands as `[ person ]` (`encoder_text`), and the encoder's state at that bracket and
its mean state go through one linear layer. It reads scope and contrast the sparse features only approximate
(people/genre test macro-F1 0.83 vs 0.76, benchmarks/results/stance.json) at ~7 ms per one-mention message on one
core (ONNX Runtime, fp32: half torch's time at batch 1, the same numbers). `load_stance` opens
either kind of checkpoint; the sparse one stays for tests and machines without the encoder's 90 MB.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ecrs.data.bundle import bundled, open_text
from ecrs.data.stance import STANCE_EMOTIONS, STANCES, Span, named_targets
from ecrs.errors import EcrsError
from ecrs.models.context_encoder import export_onnx

__all__ = ["EncoderStanceClassifier", "EntityStancer", "StanceClassifier", "StanceModel", "encoder_text", "load_stance",
           "mention_features"]

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?,]")
_CLAUSE_END = re.compile(r"[.!?;,:]+|\s-\s|\s+(?=(?:but|though|although|however|except|yet|whereas|unlike|"
                         r"other than|apart from|instead)\b)")
_NEGATORS = frozenset({"not", "no", "never", "nothing", "none", "nor", "without", "hardly", "barely", "neither",
                       "cannot", "cant", "dont", "didnt", "doesnt", "isnt", "wasnt", "wont", "aint", "havent",
                       "hasnt", "wouldnt", "couldnt", "shouldnt", "arent", "werent", "nah", "nope"})
_CONTRAST = frozenset({"but", "though", "although", "however", "except", "yet", "whereas", "unlike", "other",
                       "apart", "instead"})
_SCOPE_END = frozenset({",", "and", "so"})
_WINDOW = 2
UNSURE = 0.4
PRIOR = {"person": "wants", "genre": "wants", "movie": "liked", "reply": "none"}
_POINTS_BACK = frozenset({"it", "that", "this", "them", "one", "those", "he", "she", "him", "her", "they"})
TARGET, OTHER = "tgt", "oth"
_INTERJECTION = re.compile(r"^(no+|nah+|nope|naw)(?=\s+(actually|wait|hold on|sorry|make|let'?s|lets|i meant|"
                           r"i mean|go with|how about|what about|maybe)\b)", re.I)


def _norm(text: str) -> str:
    # "don't" and "dont" are one word to the model; so are curly and straight apostrophes
    return re.sub(r"n['’]t\b", "nt", text.lower().replace("’", "'")).replace("can not", "cannot")


def _masked(text: str, spans: Sequence[Span], target: int) -> str:
    """`text` with the target mention as ` tgt ` and every other named movie / person as ` oth ` (genre words of
    other mentions stay: "no horror" says something about the comedy that follows)."""
    parts, pos = [], 0
    order = sorted(range(len(spans)), key=lambda i: spans[i].start)
    for i in order:
        s = spans[i]
        if s.kind == "reply" or s.start < pos:
            continue
        if i == target:
            word = TARGET
        elif s.kind == "genre":
            continue
        else:
            word = OTHER
        parts += [text[pos:s.start], f" {word} "]
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)


@cache
def _polarity() -> dict[str, str]:
    """Word -> "POL+" / "POL-" for VADER lexicon words of mean valence beyond ±1 (of -4..4)."""
    out = {}
    with open_text(bundled("emotion/lexicons/vader_lexicon.txt.gz")) as f:
        for line in f:
            word, valence, *_ = line.split("\t")
            if abs(float(valence)) >= 1.0:
                out[_norm(word)] = "POL+" if float(valence) > 0 else "POL-"
    return out


def _with_polarity(words: list[str]) -> list[str]:
    pol = _polarity()
    return words + [("NEG_" if w.startswith("NEG_") else "") + pol[b]
                    for w in words if (b := w.removeprefix("NEG_")) in pol]


def mention_features(text: str, spans: Sequence[Span], target: int) -> list[str]:
    """The sparse features (names, each weighted 1) of mention `target` of `text`."""
    kind = spans[target].kind
    masked = _norm(_masked(text, spans, target))
    if kind == "reply":  # no span: the message is about the movie just suggested, as if it began with it
        masked = f"{TARGET} {masked}"
    clauses = [c for c in _CLAUSE_END.split(masked) if c and c.strip()]
    at = next((i for i, c in enumerate(clauses) if TARGET in _TOKEN.findall(c)), 0)
    feats = [f"kind={kind}", "bias"]
    if "?" in masked:
        feats.append(f"question|{kind}")
    if not clauses:
        return feats
    words = _negated(_TOKEN.findall(clauses[at]))
    at_target = next((j for j, w in enumerate(words) if w.removeprefix("NEG_") == TARGET), len(words))
    for where, part in (("L", words[:at_target]), ("R", words[at_target + 1:])):
        for w in _with_polarity(part):
            feats += [f"c:{w}", f"{where}:{w}", f"{kind}|{where}:{w}"]
    feats += [f"c2:{a}_{b}" for a, b in zip(words, words[1:])]
    if at_target < len(words) and words[at_target].startswith("NEG_"):
        feats.append(f"negated|{kind}")
    plain = [t for t in _TOKEN.findall(clauses[at]) if t != ","]
    if TARGET in plain:
        i = plain.index(TARGET)
        feats += [f"l{d}:{plain[i - d]}" for d in range(1, _WINDOW + 1) if i - d >= 0]
        feats += [f"r{d}:{plain[i + d]}" for d in range(1, _WINDOW + 1) if i + d < len(plain)]
        feats += [f"{kind}|l1:{plain[i - 1]}" if i else f"{kind}|l1:^"]
    if plain and plain[0] in _CONTRAST:
        feats.append("after_contrast")
    if at + 1 < len(clauses) and (_TOKEN.findall(clauses[at + 1])[:1] or [""])[0] in _CONTRAST:
        feats.append("before_contrast")
    # The next clause speaks of the mention only when it points back to it ("I watched X. I didn't like *it*").
    if at + 1 < len(clauses) and _POINTS_BACK & set(_TOKEN.findall(clauses[at + 1])):
        feats += [f"n:{w}" for w in _with_polarity(_negated(_TOKEN.findall(clauses[at + 1])))]
    feats += [f"m:{w}" for w in set(_negated(_TOKEN.findall(masked)))]
    return feats


def _negated(tokens: list[str]) -> list[str]:
    """Words after a negator carry `NEG_` up to the next comma or "and" ("dont like tgt, any ideas" -> NEG_like
    NEG_tgt , any ideas); commas are dropped."""
    out, neg = [], False
    for t in tokens:
        if t in _SCOPE_END:
            neg = False
            if t == ",":
                continue
        out.append(f"NEG_{t}" if neg and t not in _NEGATORS else t)
        if t in _NEGATORS:
            neg = True
    return out


class StanceModel:
    """What every stance model shares: `predict` from its `proba`."""

    def proba(self, text: str, spans: Sequence[Span]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, text: str, spans: Sequence[Span]) -> list[tuple[str, float]]:
        """The most probable stance per mention; below `UNSURE` (no stance stands out of six), the kind's prior: a
        person or genre a seeker names without a clear cue is one they want ("Tom Cruise movies"), a movie one they
        liked (ReDial's base rate), a reply to a suggestion says nothing ("more")."""
        out = []
        probs = self.proba(text, spans)
        for span, p in zip(spans, probs):
            best = int(p.argmax())
            stance = STANCES[best] if p[best] >= UNSURE else PRIOR[span.kind]
            out.append((stance, float(p[STANCES.index(stance)])))
        # A list shares its predicate: "I like Tom Hanks, Meg Ryan and Nora Ephron" says the same of all three, so
        # a member read as saying nothing takes its list's stance, and members read two ways ("I like comedy and
        # horror" with horror "disliked") take the list's likeliest reading
        for run in _lists(text, spans):
            said = Counter(out[i][0] for i in run if out[i][0] != "none")
            if not said or len(run) < 2:
                continue
            if len(said) > 1:
                total = probs[run].sum(axis=0)
                total[STANCES.index("none")] = -1.0
                stance = STANCES[int(total.argmax())]
            else:
                stance = said.most_common(1)[0][0]
            for i in run:
                out[i] = (stance, float(probs[i][STANCES.index(stance)]))
        return out


_LIST_GAP = re.compile(r"\s*(,|&|/|\band\b|\bor\b|,\s*and\b|,\s*or\b)\s*(the\s+|a\s+|an\s+|some\s+)?", re.I)


def _lists(text: str, spans: Sequence[Span]) -> list[list[int]]:
    """Runs of person / genre mentions (indices into `spans`) joined only by commas, "and", "or" and an article."""
    order = [i for i in sorted(range(len(spans)), key=lambda i: spans[i].start) if spans[i].kind in ("person", "genre")]
    runs: list[list[int]] = []
    for i in order:
        if runs and _LIST_GAP.fullmatch(text[spans[runs[-1][-1]].end:spans[i].start]):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


class StanceClassifier(StanceModel):
    """Softmax regression over `mention_features`: vocabulary (feature -> row) and weights (rows × stances)."""

    def __init__(self, vocabulary: dict[str, int], weights: np.ndarray, bias: np.ndarray):
        if weights.shape != (len(vocabulary), len(STANCES)) or bias.shape != (len(STANCES),):
            raise EcrsError(f"stance weights of shape {weights.shape} do not fit {len(vocabulary)} features")
        self.vocabulary = vocabulary
        self.weights = weights
        self.bias = bias

    def proba(self, text: str, spans: Sequence[Span]) -> np.ndarray:
        """(len(spans), len(STANCES)) probabilities, rows in `spans` order."""
        out = np.empty((len(spans), len(STANCES)))
        for i in range(len(spans)):
            rows = [r for f in mention_features(text, spans, i) if (r := self.vocabulary.get(f)) is not None]
            z = self.weights[rows].sum(axis=0) + self.bias
            e = np.exp(z - z.max())
            out[i] = e / e.sum()
        return out

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "vocabulary.json").write_text(json.dumps(self.vocabulary))
        np.savez(out / "weights.npz", weights=self.weights, bias=self.bias, stances=np.array(STANCES))

    @classmethod
    def load(cls, folder: str | Path) -> StanceClassifier:
        folder = Path(folder)
        if not (folder / "weights.npz").exists():
            raise EcrsError(f"{folder}: stance classifier not found; train it with `ecrs train stance`")
        with np.load(folder / "weights.npz") as z:
            if tuple(z["stances"]) != STANCES:
                raise EcrsError(f"{folder}: trained for stances {tuple(z['stances'])}, this code has {STANCES}")
            weights, bias = z["weights"], z["bias"]
        return cls(json.loads((folder / "vocabulary.json").read_text()), weights, bias)


_REPEATED = re.compile(r"\b(\w+)(?:\s+\1\b)+", re.I)


def encoder_text(text: str, spans: Sequence[Span], target: int) -> str:
    """The encoder's input for mention `target`: its kind, then the message with the target as `[ kind ]` and
    other named movies / people as "something" ("person: not a fan of [ person ] , any ideas?"). A `reply` target
    (the movie just suggested) opens the message, as `mention_features` reads it."""
    kind = spans[target].kind
    slot = "movie" if kind == "reply" else kind
    masked = _masked(text, spans, target)
    if kind == "reply":
        masked = f" {TARGET} . {masked}"
    masked = masked.replace(f" {TARGET} ", f" [ {slot} ] ").replace(f" {OTHER} ", " something ")
    # A word said again and again is said once: "hate hate HATE musicals" is "hate musicals" (the repeats, rare
    # in what it learned from, read as something else); a "no" that corrects the last request gets the comma chat
    # leaves out ("no actually make it [ genre ]" is "no, actually ...", not "no [ genre ]")
    said = _REPEATED.sub(r"\1", " ".join(masked.split()))
    return f"{kind}: " + _INTERJECTION.sub(r"\1,", said)


class EncoderStanceClassifier(StanceModel):
    """A sentence encoder fine-tuned to read one mention's stance (`encoder_text`); `head` maps [state at the
    target's first bracket ; mean state] to the stances. Folder: encoder/ (Hugging Face format, tokenizer included),
    head.safetensors, and encoder.onnx once it has been served (`load`)."""

    MAX_TOKENS = 96

    def __init__(self, tokenizer, encoder, head):
        if head.out_features != len(STANCES) or head.in_features != 2 * encoder.config.hidden_size:
            raise EcrsError(f"stance head {head.in_features}->{head.out_features} does not fit the encoder")
        self.tokenizer, self.encoder, self.head = tokenizer, encoder, head
        self.open_id = tokenizer.convert_tokens_to_ids("[")
        self.onnx = None  # an ONNX Runtime session of `encoder` (`load`): the same states, ~2x faster at batch 1

    def _tokens(self, texts: Sequence[str], kind: str):
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.MAX_TOKENS,
                              return_tensors=kind)

    def logits(self, texts: Sequence[str]):
        """(len(texts), len(STANCES)) logits of `encoder_text` inputs, through the torch encoder (training)."""
        batch = self._tokens(texts, "pt")
        states = self.encoder(**batch).last_hidden_state
        return self.head(_pooled_torch(states, batch["input_ids"], batch["attention_mask"], self.open_id))

    def proba(self, text: str, spans: Sequence[Span]) -> np.ndarray:
        return self.proba_many([encoder_text(text, spans, i) for i in range(len(spans))])

    def proba_many(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, len(STANCES)))
        if self.onnx is None:
            import torch

            with torch.inference_mode():
                return torch.softmax(self.logits(texts), dim=-1).double().numpy()
        batch = self._tokens(texts, "np")
        states = self.onnx.run(None, {k: batch[k].astype(np.int64) for k in _ONNX_INPUTS})[0]
        z = _pooled(states, batch["input_ids"], batch["attention_mask"], self.open_id) @ self._w.T + self._b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float64)

    def save(self, out: Path) -> None:
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(out / "encoder")
        self.tokenizer.save_pretrained(out / "encoder")
        (out / "encoder.onnx").unlink(missing_ok=True)  # exported again from these weights when served
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(out / "head.safetensors"),
                  metadata={"stances": ",".join(STANCES)})

    @classmethod
    def load(cls, folder: str | Path, onnx: bool = True) -> EncoderStanceClassifier:
        """The classifier in `folder`; `onnx`: run the encoder through ONNX Runtime when it is installed (the
        graph exported into the folder once, ~4 s), one thread (a chat turn reads one message)."""
        import torch
        from safetensors import safe_open
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        with safe_open(str(folder / "head.safetensors"), "pt") as f:
            stances = tuple((f.metadata() or {}).get("stances", "").split(","))
            state = {k: f.get_tensor(k) for k in f.keys()}
        if stances != STANCES:
            raise EcrsError(f"{folder}: trained for stances {stances}, this code has {STANCES}")
        encoder = AutoModel.from_pretrained(folder / "encoder").eval()
        head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
        head.load_state_dict(state)
        clf = cls(AutoTokenizer.from_pretrained(folder / "encoder"), encoder, head.eval())
        if onnx:
            try:
                import onnxruntime as ort
            except ImportError:  # the torch encoder, ~2x slower at batch 1
                return clf
            path = folder / "encoder.onnx"
            if not path.exists():
                export_onnx(encoder, clf.tokenizer, path)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            clf.onnx = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            clf._w, clf._b = state["weight"].double().numpy(), state["bias"].double().numpy()
            clf.encoder = None  # the served form keeps only the graph (~90 MB less resident; no `save`, no training)
        return clf


_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _pooled(states: np.ndarray, ids: np.ndarray, mask: np.ndarray, open_id: int) -> np.ndarray:
    """[state at the first "[" (position 0, [CLS], where truncation cut it) ; mean state over real tokens]."""
    at = (ids == open_id).argmax(axis=1)
    marked = states[np.arange(len(ids)), at]
    m = mask[..., None].astype(states.dtype)
    return np.concatenate([marked, (states * m).sum(1) / m.sum(1)], axis=-1).astype(np.float64)


def _pooled_torch(states, ids, mask, open_id: int):
    """`_pooled` in torch, for training (the same arithmetic; tests/test_stance.py checks they agree)."""
    import torch

    at = (ids == open_id).int().argmax(dim=1)
    marked = states[torch.arange(len(ids)), at]
    m = mask.unsqueeze(-1).to(states.dtype)
    return torch.cat([marked, (states * m).sum(1) / m.sum(1)], dim=-1)


def load_stance(folder: str | Path) -> StanceModel:
    """The stance checkpoint in `folder`, of either kind (`ecrs train stance` writes one)."""
    folder = Path(folder)
    if (folder / "head.safetensors").exists():
        return EncoderStanceClassifier.load(folder)
    return StanceClassifier.load(folder)

class EntityStancer:
    """`ecrs prepare --set entity_emotions=stance`: every dialogue turn's entities with their own stance's emotion
    (`STANCE_EMOTIONS`), from the same targets the live turn reads (`named_targets`): seeker turns' named movies,
    people and genres, and the recommender's movies when the seeker's next turn reacts to them without a title.
    Turns are linked on `raw` (ReDial's `@123` resolve exactly, and a masked mention reads the same either way)."""

    def __init__(self, classifier: StanceModel, linker, people: set[int]):
        self.classifier = classifier
        self.linker = linker
        self.people = people

    def label(self, dialogues) -> list[list[dict[int, list[tuple[str, float]]]]]:
        out = []
        for d in tqdm(dialogues, desc="reading stances", unit="dlg", mininterval=2):
            per_turn: list[dict[int, list[tuple[str, float]]]] = [{} for _ in d.turns]
            for k, turn in enumerate(d.turns):
                if turn.role != "seeker":
                    continue
                text = turn.raw or turn.text
                after = k > 0 and d.turns[k - 1].role == "recommender" and bool(d.turns[k - 1].movies)
                targets = named_targets(text, self.linker.link(text), self.people, after)
                if not targets:
                    continue
                for t, (stance, _) in zip(targets, self.classifier.predict(text, [t.span for t in targets])):
                    if stance not in STANCE_EMOTIONS:
                        continue
                    if t.span.kind == "reply":
                        for m in d.turns[k - 1].movies:
                            per_turn[k - 1][m] = STANCE_EMOTIONS[stance]
                    elif t.entity is not None:
                        per_turn[k][t.entity] = STANCE_EMOTIONS[stance]
            out.append(per_turn)
        return out
