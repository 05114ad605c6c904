# Set-up and checks for a fresh machine: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PROMPT ?= a blue circle moving left on a black background

.PHONY: install dev demo test lint bench docs model eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/sora generate "$(DEMO_PROMPT)" --seed 0 -o out/demo.mp4 --contact-sheet --overwrite

# Trains sora-tiny from scratch (about 2 hours on 2 CPU cores; stop it any time, run it again to continue)
# and installs the result as the packaged weights.
model: install
	$(BIN)/sora train --out build/sora-tiny --resume
	mkdir -p sora_cli/weights
	cp build/sora-tiny/sora-tiny.safetensors sora_cli/weights/sora-tiny.safetensors

eval: install
	$(BIN)/sora eval -o out/eval.json

lint: dev
	$(BIN)/ruff check sora_cli tests benchmarks presets

test: dev lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run.py

docs: install
	$(BIN)/python -m sora_cli.docgen docs

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
