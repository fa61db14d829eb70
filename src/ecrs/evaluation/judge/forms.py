"""The human side of judge agreement: a blinded rating form for people (CSV + a self-contained HTML page + a
key), read back into the same a / b / tie outcomes a judge gives, comparable with `preference_kappa`."""
from __future__ import annotations

import csv
import html
import json
import random
from collections.abc import Sequence
from pathlib import Path

from ecrs.errors import DataError, EcrsError
from ecrs.evaluation.judge.prompts import DIMENSION_DEFINITIONS, DIMENSIONS, JUDGE_PROMPT_VERSION, PairItem

__all__ = ["FORM_VALUES", "export_form", "form_paths", "import_form"]

FORM_VALUES = ("1", "2", "tie")  # reply 1 better, reply 2 better, equal; an empty cell = not rated
_FORM_FIELDS = ("item", "context", "reply_1", "reply_2", *DIMENSIONS)


def form_paths(csv_path: str | Path) -> tuple[Path, Path, Path]:
    """(form.csv, form.html, form.key.json) of a form."""
    p = Path(csv_path)
    return p, p.with_suffix(".html"), p.with_suffix(".key.json")


def export_form(items: Sequence[PairItem], csv_path: str | Path, n: int | None = None, seed: int = 0) -> list[Path]:
    """Write a blinded rating form for `n` seeded-random items (all when None): a CSV to fill in a spreadsheet,
    the same as a self-contained HTML page whose button downloads the filled CSV, and a key file (which system
    is reply 1) that the raters should not see. Replies are shown in a random order per item so people cannot
    learn which position holds which system."""
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise EcrsError("item ids must be unique")
    rng = random.Random(seed)
    sample = rng.sample(list(items), min(n, len(items))) if n is not None else list(items)
    if not sample:
        raise EcrsError("no items to put in the form")
    csv_p, html_p, key_p = form_paths(csv_path)
    csv_p.parent.mkdir(parents=True, exist_ok=True)
    key, rows = {}, []
    for it in sample:
        swapped = rng.random() < 0.5
        first, second = (it.b, it.a) if swapped else (it.a, it.b)
        key[it.id] = {"reply_1": it.b_name if swapped else it.a_name, "reply_2": it.a_name if swapped else it.b_name,
                      "swapped": swapped}
        rows.append({"item": it.id, "context": it.context, "reply_1": first, "reply_2": second,
                     **{d: "" for d in DIMENSIONS}})
    with csv_p.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=_FORM_FIELDS)
        w.writeheader()
        w.writerows(rows)
    key_p.write_text(json.dumps({"prompt_version": JUDGE_PROMPT_VERSION, "seed": seed, "items": key}, indent=1)
                     + "\n")
    html_p.write_text(_form_html(rows), encoding="utf-8")
    return [csv_p, html_p, key_p]


def _form_html(rows: list[dict[str, str]]) -> str:
    data = json.dumps({"fields": _FORM_FIELDS, "dims": DIMENSION_DEFINITIONS, "rows": rows}, ensure_ascii=False)
    data = data.replace("</", "<\\/")  # a reply containing "</script>" must not end the script element
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rate recommender replies ({html.escape(JUDGE_PROMPT_VERSION)})
</title>
<style>body{{font:15px system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
.item{{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0}}pre{{white-space:pre-wrap;
background:#f6f6f6;padding:.5rem}}.replies{{display:grid;grid-template-columns:1fr 1fr;gap:1rem}}
td{{padding:.2rem .6rem}}</style></head><body>
<h1>Which reply is better?</h1>
<p>For each conversation, compare reply 1 and reply 2 on each dimension: 1, 2, or tie. Dimensions:</p>
<ul id="dims"></ul><div id="items"></div>
<button id="save">Download filled CSV</button>
<script id="data" type="application/json">{data}</script>
<script>
const D = JSON.parse(document.getElementById("data").textContent);
const el = (t, a = {{}}, txt) => {{ const e = document.createElement(t); Object.assign(e, a);
  if (txt !== undefined) e.textContent = txt; return e; }};
for (const [d, t] of Object.entries(D.dims)) document.getElementById("dims").append(el("li", {{}}, d + ": " + t));
D.rows.forEach((r, i) => {{
  const box = el("div", {{className: "item"}});
  box.append(el("h3", {{}}, "Item " + (i + 1)), el("pre", {{}}, r.context));
  const reps = el("div", {{className: "replies"}});
  for (const k of ["reply_1", "reply_2"]) {{ const c = el("div"); c.append(el("b", {{}}, k.replace("_", " ")),
    el("pre", {{}}, r[k])); reps.append(c); }}
  const tab = el("table");
  for (const d of Object.keys(D.dims)) {{
    const tr = el("tr"); tr.append(el("td", {{}}, d));
    for (const v of ["1", "2", "tie"]) {{ const td = el("td"), lab = el("label");
      const inp = el("input", {{type: "radio", name: i + ":" + d, value: v}});
      inp.onchange = () => {{ r[d] = v; }}; lab.append(inp, " " + v); td.append(lab); tr.append(td); }}
    tab.append(tr);
  }}
  box.append(reps, tab); document.getElementById("items").append(box);
}});
const q = s => '"' + String(s).replaceAll('"', '""') + '"';
document.getElementById("save").onclick = () => {{
  const lines = [D.fields.join(",")].concat(D.rows.map(r => D.fields.map(f => q(r[f] ?? "")).join(",")));
  const a = el("a", {{href: URL.createObjectURL(new Blob([lines.join("\\r\\n") + "\\r\\n"], {{type: "text/csv"}})),
    download: "ratings.csv"}});
  a.click();
}};
</script></body></html>
"""


def import_form(csv_path: str | Path, key_path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """A filled form -> {item: {dim: "a" | "b" | "tie"}} (un-blinded with the key; default: the form's own key
    file). Empty cells are unrated and left out; any other value than 1, 2, tie raises DataError with the line."""
    csv_p = Path(csv_path)
    key_p = Path(key_path) if key_path is not None else form_paths(csv_p)[2]
    if not csv_p.exists():
        raise DataError("form not found", csv_p)
    if not key_p.exists():
        raise DataError("key file not found (written by export-form beside the CSV)", key_p)
    try:
        key = json.loads(key_p.read_text())["items"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"not a form key ({type(e).__name__})", key_p) from None
    out: dict[str, dict[str, str]] = {}
    with csv_p.open(newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets often add a BOM
        reader = csv.DictReader(f)
        missing = [c for c in ("item", *DIMENSIONS) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"missing columns {missing}", csv_p, 1)
        for row in reader:
            line = reader.line_num
            item = (row["item"] or "").strip()
            if item not in key:
                raise DataError(f"item {item!r} is not in the key {key_p}", csv_p, line)
            if item in out:
                raise DataError(f"item {item!r} twice", csv_p, line)
            swapped = bool(key[item]["swapped"])
            to_ab = {"1": "b" if swapped else "a", "2": "a" if swapped else "b", "tie": "tie"}
            rated = {}
            for d in DIMENSIONS:
                v = (row[d] or "").strip().lower()
                if not v:
                    continue
                if v not in to_ab:
                    raise DataError(f"{d}: {row[d]!r} is not one of 1, 2, tie (or empty)", csv_p, line)
                rated[d] = to_ab[v]
            out[item] = rated
    return out
