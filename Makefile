# Set-up and checks for a fresh machine: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PROMPT ?= a blue circle moving left on a black background

.PHONY: install dev demo test lint browser bench docs model eval clean

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

# Trains sora-tiny from scratch (about 3-4 h on 2 CPU cores; stop it any time, run it again to continue)
# and installs the result as the packaged weights. TRAIN_DEVICE=cuda trains on a GPU: the same batches, other bits.
TRAIN_DEVICE ?= cpu
model: install
	$(BIN)/sora train --out build/sora-tiny --resume --device $(TRAIN_DEVICE)
	mkdir -p sora_cli/weights
	cp build/sora-tiny/sora-tiny.safetensors sora_cli/weights/sora-tiny.safetensors

eval: install
	$(BIN)/sora eval -o out/eval.json

lint: dev
	$(BIN)/ruff check sora_cli tests benchmarks presets

# The gallery test opens the page in headless Chromium (Debian's package) where it can be installed; elsewhere
# it validates the HTML and the files it names.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; } && \
	    echo "installed Chromium for the gallery test"; } || \
	  echo "no Chromium here: the gallery test checks the HTML and its files only"

test: dev lint browser
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run.py

docs: install
	$(BIN)/python -m sora_cli.docgen docs

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
