"""old vs new: identical arrays, or their largest absolute difference; gradients also against their own repeats."""
import json
import sys

import numpy as np

out, result = sys.argv[1], sys.argv[2]


def diff(a, b):
    return 0.0 if np.array_equal(a, b) else float(np.abs(a - b).max())


rows = {}
for k in ("scores", "logits", "loss"):
    a, b = np.load(f"{out}/old_{k}.npy"), np.load(f"{out}/new_{k}.npy")
    rows[k] = {"shape": list(a.shape), "max_abs_difference": diff(a, b)}
ga, gb = np.load(f"{out}/old_grads.npy"), np.load(f"{out}/new_grads.npy")
rows["grads"] = {"shape": list(ga.shape[1:]),
                 "old_vs_new_first_run": diff(ga[0], gb[0]),
                 "old_vs_new_every_pair": max(diff(x, y) for x in ga for y in gb),
                 "old_repeats": max(diff(ga[0], x) for x in ga[1:]), "new_repeats": max(diff(gb[0], x) for x in gb[1:])}
json.dump(rows, open(result, "w"), indent=1)
print(json.dumps(rows, indent=1))
