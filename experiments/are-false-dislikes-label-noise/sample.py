import os, random
os.environ.setdefault("OMP_WAIT_POLICY","PASSIVE")
from ecrs.training.stance import StanceConfig, load_stance_data
from ecrs.models.stance import load_stance
data = load_stance_data(StanceConfig())
clf = load_stance("artifacts/stance")
rows=[]
for e in data["redial"]["test"]:
    if e.mentions[0].kind == "reply": continue
    preds = clf.predict(e.text, e.mentions)
    for i,(lab,m) in enumerate(zip(e.labels, e.mentions)):
        if m.kind=="movie" and lab in ("liked","seen","none") and preds[i][0]=="disliked":
            rows.append((e.group, m.start, m.end, lab, e.text))
print(len(rows))
random.Random(25).shuffle(rows)
with open("/work/fp50.tsv","w") as f:
    for g,s,en,lab,t in rows[:50]:
        f.write(f"{g}\t{s}\t{en}\t{lab}\t{t[:s]}[[{t[s:en]}]]{t[en:]}\n".replace("\n","",0))
