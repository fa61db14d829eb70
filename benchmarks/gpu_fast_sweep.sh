#!/usr/bin/env bash
# Fast-backbone recommenders trained side by side on one GPU, then evaluated on the ReDial test split on the same
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
# wall time: a run stopped by it keeps its best epoch's model.pt (its log says where it stopped).
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
  sets=(--set "name=$name" --set threads=1 --set "out_dir=artifacts/recommender/exp/{name}-s{seed}")
  IFS=, read -ra kv <<< "$overrides"
  for o in "${kv[@]}"; do sets+=(--set "$o"); done
  for s in $seeds; do
    OMP_NUM_THREADS=1 timeout "${LIMIT:-0}" bash -c "$(declare -f ecrs); ecrs \"\$@\"" _ train recommender --config "configs/recommender/$config.yaml" "${sets[@]}" \
      --set "train.seed=$s" > "logs/sweep/$name-s$s.log" 2>&1 &
  done
  names+=("$name")
done
wait
for n in "${names[@]}"; do
  grep -h "best valid" logs/sweep/"$n"-s*.log
  OMP_NUM_THREADS=2 ecrs evaluate --set "datasets=[redial]" --set "systems=[\"$n:artifacts/recommender/exp/$n-s*\"]" \
    --set "results=logs/sweep/results-$n.json" > "logs/sweep/evaluate-$n.log" 2>&1 &
done
wait
python3 - "$out/results.json" logs/sweep/results-*.json <<'EOF'
import json, sys
rows = [r for f in sys.argv[2:] for r in json.load(open(f))["rows"]]
json.dump({"rows": rows}, open(sys.argv[1], "w"), indent=1)
for r in rows:
    m = r["metrics"]["standard"]
    print(f'{r["system"]:24s} R@50 {m["R@50"]:.4f}  RT@50 {m["RT@50"]:.4f}  AUC {m["AUC"]:.4f}')
EOF
tar -czf "$out/runs.tar.gz" logs/sweep artifacts/recommender/exp/*/metrics.json artifacts/recommender/exp/*/config.yaml
