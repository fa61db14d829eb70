"""Sample 50 ReDial test movie mentions that the stance encoder reads as disliked against a questionnaire liked /
seen / none (run from the repository root with the trained artifacts/stance). checked.tsv: those rows, read by hand."""
import os
import random

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from ecrs.models.stance import load_stance  # noqa: E402
from ecrs.training.stance import StanceConfig, load_stance_data  # noqa: E402

data = load_stance_data(StanceConfig())
clf = load_stance("artifacts/stance")
rows = []
for e in data["redial"]["test"]:
    if e.mentions[0].kind == "reply":
        continue
    for lab, m, (pred, _) in zip(e.labels, e.mentions, clf.predict(e.text, e.mentions)):
        if m.kind == "movie" and lab in ("liked", "seen", "none") and pred == "disliked":
            rows.append((e.group, m.start, m.end, lab, e.text))
print(len(rows), "false dislikes")
random.Random(25).shuffle(rows)
with open("sampled.tsv", "w") as f:
    for g, s, en, lab, t in rows[:50]:
        f.write(f"{g}\t{s}\t{en}\t{lab}\t{t[:s]}[[{t[s:en]}]]{t[en:]}\n")
