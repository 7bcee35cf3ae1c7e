# One entry point for people and CI. Every target builds .venv first if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slurm soak check bench lint format typecheck clean emulator

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xnatsync demo

test: $(STAMP)
	$(BIN)/pytest -q

# A real one-node Slurm (Debian's slurm-wlm and munge, installed if missing: needs root and apt)
# runs configs/slurm-submit.sh against the emulator. Not part of `make test`.
test-slurm: $(STAMP)
	PY=$(CURDIR)/$(BIN)/python PYTHONPATH=$(CURDIR) bash tests/slurm/run.sh

# The scanner gateway's soak (benchmarks/soak.py): 4,000 instances by C-STORE and by files over
# ~3 minutes with import faults and a 30 s outage, then each checked archived exactly once and
# the daemon's memory flat; exit 1 if not. About 4 minutes; not part of `make test`.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

check: $(STAMP)
	$(BIN)/ruff check xnatsync tests benchmarks
	$(BIN)/ruff format --check xnatsync tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format xnatsync tests benchmarks
	$(BIN)/ruff check --fix xnatsync tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

emulator: $(STAMP)
	$(BIN)/xnatsync emulator --seed demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
