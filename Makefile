# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/pressroom run

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# Every bench/*.py is a benchmark script but the _-prefixed helpers (bench/_common.py); all run in
# sequence, and the target fails if any failed.
BENCHMARKS := $(sort $(filter-out bench/_%,$(wildcard bench/*.py)))

bench: install
	@status=0; for script in $(BENCHMARKS); do \
		echo "== $$script"; $(BIN)/python $$script || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) .pressroom test-artifacts .pytest_cache
