# The README's two set-up commands: `make run` and `make test` (plus `make bench`).
# Each creates .venv when missing and installs torch==2.13.0 first (the CPU wheel on these
# machines; any other torch would pull a multi-GB CUDA build), then seqlab in editable mode.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.seqlab-installed

.PHONY: run test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,pde,rl]"
	touch $(STAMP)

# The default job: iTransformer on the ETTh1 copy shipped in forecasting/datasets/, tracked in
# MLflow (./mlflow.db), with fewer epochs than the reference script so it takes a few minutes.
run: $(STAMP)
	$(BIN)/seqlab forecast train --data ETTh1 --model itransformer --horizon 96 \
		--data-dir forecasting/datasets --epochs 3

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,pde,rl,bench]"
	$(BIN)/seqlab bench forecasting --quick

clean:
	rm -rf $(VENV) outputs mlruns mlflow.db .pytest_cache
