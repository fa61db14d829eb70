#!/usr/bin/env bash
# Train every recommender row (3 seeds each) on ReDial and INSPIRED, then evaluate them into benchmarks/results.
# Usage: scripts/train_recommenders.sh [fast|lm|all]
# Re-running is safe: a finished run returns at once, an interrupted one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
ECRS=${ECRS:-.venv/bin/ecrs}
what=${1:-fast}
if [[ $what == fast || $what == all ]]; then
  for row in kbrd unicrs-fast ecr-l-fast ecr-ls-fast ecr-lg-fast ecr-fast; do
    for config in configs/recommender/$row.yaml configs/recommender/$row-inspired.yaml; do
      for seed in 0 1 2; do
        $ECRS train recommender --config "$config" --set train.seed=$seed
      done
    done
  done
fi
if [[ $what == lm || $what == all ]]; then
  for row in unicrs-lm ecr-lm; do
    $ECRS train recommender --config configs/recommender/$row.yaml --set train.seed=0
  done
fi
$ECRS evaluate --config configs/evaluate_recommenders.yaml
