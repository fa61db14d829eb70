#!/usr/bin/env bash
# A/B of the recommendation-only turn (HTTP, template replies, 60 turns) between fe72abb (before this session's chat
# fixes) and the working tree, interleaved on one machine: old, new, old, new. Run from the repository root.
set -euo pipefail
git worktree add -f /tmp/ecrs-old fe72abb -q && ln -sfn "$PWD/artifacts" /tmp/ecrs-old/artifacts
for i in 1 2; do
  (cd /tmp/ecrs-old && PYTHONPATH=/tmp/ecrs-old/src "$OLDPWD/.venv/bin/python" benchmarks/serving_load.py \
     --generator template --clients '' --turns 60 --out "$OLDPWD/experiments/did-the-chat-fixes-slow-the-turn/old$i.json")
  .venv/bin/python benchmarks/serving_load.py --generator template --clients '' --turns 60 \
     --out experiments/did-the-chat-fixes-slow-the-turn/new$i.json
done
