#!/usr/bin/env bash
# The generator's GPU path (issue 5): a short LoRA fine-tuning of SmolLM2-135M through `ecrs train generator` on
# whatever accelerator torch sees, as run on the `device` machine (no llama.cpp there: the base is the GGUF file
# itself, converted by transformers; no GGUF export). Writes OUT/train_log.json (steps, s/step, losses, hardware).
#
#   bash benchmarks/gpu_generator_check.sh GGUF OUT [STEPS]
set -euo pipefail
gguf=$1 out=$2 steps=${3:-60}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
run=$(mktemp -d)
python3 -c 'import sys; from ecrs.cli import main; sys.exit(main())' train generator --set base="$gguf" \
  --set out_dir="$run" --set dialogue_fraction=0 --set export_gguf=false --set train.max_steps="$steps" \
  --set train.checkpoint_every=0 --set threads=8
mkdir -p "$out" && cp "$run/train_log.json" "$out/"
