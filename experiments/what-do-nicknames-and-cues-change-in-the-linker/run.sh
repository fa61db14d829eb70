#!/usr/bin/env bash
# Chat-linker links of the first 12,010 ReDial test messages, at OLD (a commit) and at the working tree; prints
# every message whose links differ.  Usage: run.sh OLD OUT_JSON   (from the repository root)
set -euo pipefail
old=$1; out=$2; here=$(dirname "$0"); tmp=$(mktemp -d)
git worktree add -q "$tmp/wt" "$old"
(cd "$tmp/wt" && PYTHONPATH=src "$OLDPWD/.venv/bin/python" "$OLDPWD/$here/links.py" "$tmp/old.jsonl")
PYTHONPATH=src .venv/bin/python "$here/links.py" "$tmp/new.jsonl"
python3 - "$tmp/old.jsonl" "$tmp/new.jsonl" "$old" "$out" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
changed = [{"text": x[0], "old": x[1], "new": y[1]} for x, y in zip(a, b) if x[1] != y[1]]
json.dump({"old_commit": sys.argv[3], "messages": len(a), "changed": len(changed), "changes": changed},
          open(sys.argv[4], "w"), indent=1)
print(len(a), "messages,", len(changed), "changed")
PY
git worktree remove --force "$tmp/wt"
