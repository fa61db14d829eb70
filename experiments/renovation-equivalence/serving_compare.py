"""Old vs new serving: per run and as medians over the runs of each side, the latencies that the bars name."""
import json
import statistics
import sys
from pathlib import Path

out, result = Path(sys.argv[1]), sys.argv[2]
KEYS = {"recommendation_only_p50_s": ("recommendation_only", "p50_s"), "full_reply_p50_s": ("full_reply", "p50_s"),
        "first_token_p50_s": ("stream", "time_to_first_token", "p50_s"),
        "turns_per_s_at_8_clients": ("concurrency_8", "turns_per_s"), "errors_at_32_clients": ("concurrency_32", "errors")}


def get(d, path):
    for k in path:
        d = d[k]
    return d


runs = {}
for f in sorted(out.glob("*.json")):
    m = json.loads(f.read_text())
    m = m.get("metrics", m.get("results", m))  # the old script wrote its numbers under "results"
    runs[f.stem] = {k: get(m, p) for k, p in KEYS.items()}
sides = {s: {k: statistics.median(r[k] for n, r in runs.items() if n.startswith(s)) for k in KEYS}
         for s in ("old", "new")}
ratio = {k: round(sides["new"][k] / sides["old"][k], 3) for k in KEYS if sides["old"][k]}
json.dump({"runs": runs, "median": sides, "new_over_old": ratio}, open(result, "w"), indent=1)
print(json.dumps({"median": sides, "new_over_old": ratio}, indent=1))
