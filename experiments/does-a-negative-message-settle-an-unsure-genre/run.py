"""Should the live turn read a person or genre as disliked when the stance model says "none" (or is unsure) and the
message's emotion is negative (ECR's broadcast, as the turn already does for movies)? Measured on the validation
families of the people / genre data (the stance model chose its epoch on them, never trained on them), never on
the test families. Run from the repository root."""
import json
from pathlib import Path

import torch

from ecrs.emotions import kept_labels
from ecrs.models.emotion import EmotionClassifier
from ecrs.models.stance import UNSURE, load_stance
from ecrs.training.stance import StanceConfig, _split, load_stance_data, stance_scores

torch.set_num_threads(1)
cfg = StanceConfig()
_, val = _split(load_stance_data(cfg)["people_genres"]["train"], cfg)
stance, emotion = load_stance("artifacts/stance"), EmotionClassifier.load("artifacts/emotion")
labels = ("liked", "disliked", "wants", "avoid", "none")
gold, plain, rule, changed = [], [], [], []
for e in val:
    keep = [i for i, m in enumerate(e.mentions) if m.kind in ("person", "genre")]
    if not keep:
        continue
    cut = e.text
    for m in sorted((m for m in e.mentions if m.kind in ("movie", "person")), key=lambda m: -m.start):
        cut = cut[:m.start] + " " + cut[m.end:]
    negative = kept_labels(list(emotion.predict_proba([cut], [""])[0]))[0][0] == "negative"
    for i, (p, conf) in enumerate(stance.predict(e.text, e.mentions)):
        if i not in keep:
            continue
        gold.append(e.labels[i])
        plain.append(p)
        r = "disliked" if negative and (p == "none" or conf < UNSURE) else p
        rule.append(r)
        if r != p:
            changed.append({"text": e.text, "target": e.text[e.mentions[i].start:e.mentions[i].end], "gold": e.labels[i]})
out = {"validation_mentions": len(gold), "macro_f1_model": round(stance_scores(gold, plain, labels)["macro_f1"], 4),
       "macro_f1_with_rule": round(stance_scores(gold, rule, labels)["macro_f1"], 4), "changed": changed}
Path(__file__).with_name("result.json").write_text(json.dumps(out, indent=1) + "\n")
print({k: v for k, v in out.items() if k != "changed"}, len(changed), "changed")
