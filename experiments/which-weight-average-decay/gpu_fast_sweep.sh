#!/usr/bin/env bash
# Fast-backbone recommenders trained side by side on one GPU, then evaluated on their dataset's test split on the same
# machine's CPUs: sweeps that would take hours on 2 cores, as run on the `device` machine (CUDA PyTorch and PyG
# there, no network, no MiniLM: the carried turn cache must hold every train/valid/test turn).
#
#   bash benchmarks/gpu_fast_sweep.sh OUT "SEEDS" VARIANT...        VARIANT = name=config[,key=value...]
#
# e.g. bash benchmarks/gpu_fast_sweep.sh /tmp/out "0 1 2" ecr=ecr-fast ecr-ema99=ecr-fast,train.ema_decay=0.99
# Carried from a machine that has trained and evaluated before: artifacts/data, artifacts/emotion,
# artifacts/cache/minilm/turn_embeddings.npz. Writes OUT/results.json (`ecrs evaluate` rows, one per variant) and
# OUT/runs.tar.gz (each run's log, metrics.json and config.yaml; no weights). A GPU row is comparable only with
# rows trained in the same sweep: the numerics differ from the CPU's. LIMIT=SECONDS (environment) caps each training's
# wall time: a run stopped by it keeps its best epoch's model.pt (its log says where it stopped). The device's copy of
# the tree has no usable git history: set ECRS_GIT_COMMIT=$(git rev-parse HEAD) (here, before the call) in the command
# so that the rows record the commit that was sent.
set -uo pipefail
out=$1 seeds=$2
shift 2
mkdir -p "$out" logs/sweep
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
ecrs() { python3 -c 'import sys; from ecrs.cli import main; sys.exit(main())' "$@"; }
python3 -c "import torch; print('torch', torch.__version__, '| cuda:', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
names=()
for v in "$@"; do
  name=${v%%=*} spec=${v#*=}
  IFS=, read -r config overrides <<< "$spec"
  dataset=$(sed -n 's/^ *dataset: *\([a-z]*\).*/\1/p' "configs/recommender/$config.yaml" | head -1)
  sets=(--set "name=$name" --set threads=1 --set "out_dir=artifacts/recommender/{dataset}/{name}-s{seed}")
  IFS=, read -ra kv <<< "$overrides"
  for o in "${kv[@]}"; do sets+=(--set "$o"); done
  for s in $seeds; do
    OMP_NUM_THREADS=1 timeout "${LIMIT:-0}" bash -c "$(declare -f ecrs); ecrs \"\$@\"" _ train recommender --config "configs/recommender/$config.yaml" "${sets[@]}" \
      --set "train.seed=$s" > "logs/sweep/$dataset-$name-s$s.log" 2>&1 &
  done
  names+=("$dataset:$name")
done
wait
for dn in "${names[@]}"; do
  d=${dn%%:*} n=${dn#*:}
  grep -h "best valid" logs/sweep/"$d-$n"-s*.log
  OMP_NUM_THREADS=2 ecrs evaluate --set "datasets=[$d]" --set "systems=[\"$n:artifacts/recommender/$d/$n-s*\"]" \
    --set "results=logs/sweep/results-$d-$n.json" > "logs/sweep/evaluate-$d-$n.log" 2>&1 &
done
wait
python3 - "$out/results.json" logs/sweep/results-*.json <<'EOF'
import json, sys
rows = [r for f in sys.argv[2:] for r in json.load(open(f))["rows"]]
json.dump({"rows": rows}, open(sys.argv[1], "w"), indent=1)
for r in rows:
    m = {k: (v or {}).get("mean") if isinstance(v, dict) or v is None else v
         for k, v in r["metrics"]["standard"].items()}
    print(r["dataset"], r["system"], *(f"{k} {m[k]:.4f}" for k in ("R@50", "RT@50", "AUC") if m.get(k) is not None))
EOF
tar -czf "$out/runs.tar.gz" logs/sweep artifacts/recommender/*/*/metrics.json artifacts/recommender/*/*/config.yaml
