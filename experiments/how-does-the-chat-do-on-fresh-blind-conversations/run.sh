#!/usr/bin/env bash
# Run the two fresh sets (S.yaml, R.yaml) through the conversations benchmark at a commit (default: the working tree).
#   experiments/how-does-the-chat-do-on-fresh-blind-conversations/run.sh [COMMIT]
# The benchmark reads only heldout.yaml / tuning.yaml, so each set is copied as tuning.yaml into its own folder.
set -euo pipefail
here=experiments/how-does-the-chat-do-on-fresh-blind-conversations
src=$PWD
if [ -n "${1:-}" ]; then
  git worktree add -f /tmp/ecrs-fresh "$1" -q && ln -sfn "$PWD/artifacts" /tmp/ecrs-fresh/artifacts && src=/tmp/ecrs-fresh
fi
for x in S R T U V W; do
  mkdir -p "/tmp/fresh_$x" && cp "$here/$x.yaml" "/tmp/fresh_$x/tuning.yaml"
  (cd "$src" && OMP_WAIT_POLICY=PASSIVE PYTHONPATH="$src/src" "$OLDPWD/.venv/bin/python" benchmarks/conversations.py \
     --set data="/tmp/fresh_$x" --parts tuning --set out="/tmp/fresh_$x/out.json")
done
[ -n "${1:-}" ] && git worktree remove -f /tmp/ecrs-fresh || true
