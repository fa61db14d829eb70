"""Chat-linker links of the first ~12,000 ReDial test messages, one JSON line each: python links.py OUT."""
import json
import sys

from ecrs.data.bundle import bundled, iter_jsonl
from ecrs.data.kg import load_redial_kg
from ecrs.data.linking import build_redial_linker

kg = load_redial_kg(); lk = build_redial_linker(kg, chat=True)
out = open(sys.argv[1], "w")
n = 0
for _, d in iter_jsonl(bundled("redial/test.jsonl.gz")):
    for m in d.get("messages", []):
        t = m.get("text", "")
        out.write(json.dumps([t, [(x.surface, kg.names[x.entity_id]) for x in lk.link(t)]]) + "\n")
        n += 1
    if n > 12000: break
