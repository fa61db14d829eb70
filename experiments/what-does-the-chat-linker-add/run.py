"""Links the chat linker (surnames, one-typo names) makes on ReDial test messages that the prepared-data linker
does not: how many, and a seeded sample of 40 to read by hand. Run from the repository root."""
import json
import random
from pathlib import Path

from ecrs.data.bundle import bundled, iter_jsonl
from ecrs.data.kg import load_redial_kg
from ecrs.data.linking import build_redial_linker

kg = load_redial_kg()
plain, chat = build_redial_linker(kg), build_redial_linker(kg, chat=True)
messages = [m["text"] for _, d in iter_jsonl(bundled("redial/test.jsonl.gz")) for m in d["messages"]]
new, lost = [], 0
for text in messages:
    before = {(x.start, x.end, x.entity_id) for x in plain.link(text)}
    after = {(x.start, x.end, x.entity_id) for x in chat.link(text)}
    lost += len(before - after)
    new += [{"surface": text[s:e], "entity": kg.names[eid], "message": text} for s, e, eid in sorted(after - before)]
sample = random.Random(1).sample(new, 40)
out = {"messages": len(messages), "new_links": len(new), "links_lost": lost, "sample": sample}
Path(__file__).with_name("result.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
print(f"{len(messages)} messages: {len(new)} new links, {lost} lost")
