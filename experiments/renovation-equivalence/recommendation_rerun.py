"""Rows retrained and re-evaluated after the renovation against the committed rows before it (f5cf0d0): per system,
dataset and metric, new mean minus old mean with a 95 % Welch interval over the seeds (ecrs.evaluation.metrics.
seed_difference). Usage: python recommendation_rerun.py OLD.json NEW.json OUT.json"""
import json
import sys

from ecrs.evaluation.metrics import seed_difference

old_path, new_path, out = sys.argv[1:4]
METRICS = ("R@1", "R@10", "R@50", "RT@50", "AUC")


def runs(path):
    rows = json.load(open(path))["rows"]
    return {(r["system"], r["dataset"]): r for r in rows if r.get("per_run")}


old, new = runs(old_path), runs(new_path)
result = {}
for key in sorted(set(old) & set(new)):
    if old[key].get("provenance", {}).get("commit") == new[key].get("provenance", {}).get("commit"):
        continue  # not re-run
    entry = {}
    for m in METRICS:
        a = [r["metrics"]["standard"][m] for r in new[key]["per_run"]]
        b = [r["metrics"]["standard"][m] for r in old[key]["per_run"]]
        if None in a or None in b or len(a) < 2 or len(b) < 2:
            continue
        ci = seed_difference(a, b)
        entry[m] = {"new": round(sum(a) / len(a), 4), "old": round(sum(b) / len(b), 4),
                    "difference": round(ci.difference, 4), "low": round(ci.low, 4), "high": round(ci.high, 4),
                    "excludes_zero": ci.excludes_zero}
    result["/".join(key)] = entry
json.dump(result, open(out, "w"), indent=1)
for k, e in result.items():
    print(k, {m: f"{v['difference']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]" for m, v in e.items()})
