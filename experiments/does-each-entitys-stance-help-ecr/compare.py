"""ECR with each entity's own stance as its local emotion (ecr-stance-fast, samples of `ecrs prepare --set
entity_emotions=stance`) minus ECR with the utterance's emotion broadcast (ecr-fast), ReDial test, 3 seeds each:
95 % Welch interval over the seeds (ecrs.evaluation.metrics.seed_difference). Both rows are in
benchmarks/results/recommendation.json. Usage: python compare.py benchmarks/results/recommendation.json OUT.json"""
import json
import sys

from ecrs.evaluation.metrics import seed_difference

rows = {(r["system"], r["dataset"]): r for r in json.load(open(sys.argv[1]))["rows"] if r.get("per_run")}
out = {}
for a_name, b_name in (("ecr-stance-fast", "ecr-fast"), ("ecr-stance-fast", "unicrs-fast")):
    a_row, b_row = rows[(a_name, "redial")], rows[(b_name, "redial")]
    entry = {}
    for m in ("R@1", "R@10", "R@50", "RT@50", "AUC"):
        a = [r["metrics"]["standard"][m] for r in a_row["per_run"]]
        b = [r["metrics"]["standard"][m] for r in b_row["per_run"]]
        ci = seed_difference(a, b)
        entry[m] = {a_name: round(sum(a) / len(a), 4), b_name: round(sum(b) / len(b), 4),
                    "difference": round(ci.difference, 4), "low": round(ci.low, 4), "high": round(ci.high, 4)}
    out[f"{a_name} - {b_name}"] = entry
json.dump(out, open(sys.argv[2], "w"), indent=1)
for k, e in out.items():
    print(k, {m: f"{v['difference']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]" for m, v in e.items()})
