#!/usr/bin/env bash
# A/B of the recommendation-only turn (HTTP, template replies, 60 turns) between an older commit (before a session's
# chat fixes) and the working tree, interleaved on one machine: old, new, old, new. Run from the repository root:
#   experiments/did-the-chat-fixes-slow-the-turn/run.sh OLD_COMMIT OUT_DIR
# Session 35: run.sh fe72abb experiments/did-the-chat-fixes-slow-the-turn (old1/2, new1/2.json)
# Session 36: run.sh 6dbff8c experiments/did-the-chat-fixes-slow-the-turn/session36
# Session 37: run.sh 6da3ba4 experiments/did-the-chat-fixes-slow-the-turn/session37
# Session 38: run.sh cd621c3 experiments/did-the-chat-fixes-slow-the-turn/session38
set -euo pipefail
old=${1:-fe72abb}
out=${2:-experiments/did-the-chat-fixes-slow-the-turn}
mkdir -p "$out"
git worktree remove -f /tmp/ecrs-old 2>/dev/null || true
git worktree add -f /tmp/ecrs-old "$old" -q && ln -sfn "$PWD/artifacts" /tmp/ecrs-old/artifacts
for i in 1 2; do
  (cd /tmp/ecrs-old && PYTHONPATH=/tmp/ecrs-old/src "$OLDPWD/.venv/bin/python" benchmarks/serving_load.py \
     --generator template --clients '' --turns 60 --out "$OLDPWD/$out/old$i.json")
  .venv/bin/python benchmarks/serving_load.py --generator template --clients '' --turns 60 --out "$out/new$i.json"
done
git worktree remove -f /tmp/ecrs-old
