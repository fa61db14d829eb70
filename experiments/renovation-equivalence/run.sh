#!/usr/bin/env bash
# The same trained ECR checkpoint through the code before the renovation (OLD: a worktree of f5cf0d0) and the code
# of this checkout; compare.py then writes result.json. From the repository root:
#   git worktree add /tmp/ecrs-old f5cf0d0
#   OLD=/tmp/ecrs-old RUN=artifacts/recommender/redial/ecr-fast-s0 DATA=artifacts/data \
#     bash experiments/renovation-equivalence/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/renovation-equivalence}
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE RUN=$(realpath "$RUN") DATA=$(realpath "$DATA")
for side in old new; do
  src=$([ "$side" = old ] && echo "$OLD/src" || echo "$PWD/src")
  PYTHONPATH=$src .venv/bin/python "$here/equiv.py" "$out/$side"
  PYTHONPATH=$src .venv/bin/python "$here/grads.py" "$out/$side"
done
.venv/bin/python "$here/compare.py" "$out" "$here/result.json"
