"""Chat-linker links of the first ~12,000 ReDial test messages, one JSON line each: python links.py OUT."""
import json
import sys

from ecrs.data.bundle import bundled, iter_jsonl
from ecrs.data.kg import load_redial_kg
from ecrs.data.linking import build_redial_linker

kg = load_redial_kg()
linker = build_redial_linker(kg, chat=True)
n = 0
with open(sys.argv[1], "w") as out:
    for _, dialogue in iter_jsonl(bundled("redial/test.jsonl.gz")):
        for message in dialogue.get("messages", []):
            text = message.get("text", "")
            out.write(json.dumps([text, [(m.surface, kg.names[m.entity_id]) for m in linker.link(text)]]) + "\n")
            n += 1
        if n > 12000:
            break
