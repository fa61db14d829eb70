#!/usr/bin/env bash
# benchmarks/serving_load.py of the code before the renovation (OLD, a worktree of f5cf0d0) and of this checkout,
# alternating old, new, new, old (or $SIDES) on the same machine and the same artifacts (ART); serving_compare.py then writes
# serving_result.json. From the repository root, with nothing else running:
#   OLD=/tmp/ecrs-old ART=artifacts bash experiments/renovation-equivalence/serving.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/renovation-serving}
mkdir -p "$out"
art=$(realpath "$ART")
py=$PWD/.venv/bin/python
unset OMP_WAIT_POLICY  # the servers decode with llama.cpp
for side in ${SIDES:-old new new old}; do
  n=$(ls "$out" | grep -c "^$side-" || true)
  if [ "$side" = old ]; then
    (cd "$OLD" && PYTHONPATH="$OLD/src" "$py" benchmarks/serving_load.py --artifacts "$art" --out "$out/old-$n.json")
  else
    "$py" benchmarks/serving_load.py --artifacts "$art" --out "$out/new-$n.json"
  fi
done
"$py" "$here/serving_compare.py" "$out" "$here/serving_result.json"
