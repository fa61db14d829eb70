"""How many context entity emotions the stances change: ReDial test samples of artifacts/data vs artifacts/data-stance."""
import json
import sys
from collections import Counter

from ecrs.data.prepare import load_samples

a, b = load_samples("artifacts/data", "redial", "test"), load_samples("artifacts/data-stance", "redial", "test")
assert [s.id for s in a] == [s.id for s in b]
pairs = [(x[0][0] if x else "-", y[0][0] if y else "-") for s, t in zip(a, b)
         for x, y in zip(s.entity_emotions, t.entity_emotions)]
changed = Counter(p for p in pairs if p[0] != p[1])
out = {"context_entities": len(pairs), "changed": sum(changed.values()),
       "top_label_changes": {f"{x} -> {y}": n for (x, y), n in changed.most_common(12)}}
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(out)
