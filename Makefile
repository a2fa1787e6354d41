# mlops-ops: two commands do all the set-up on a fresh machine.
#   make demo   create .venv, install, run the whole model lifecycle on embedded defaults
#   make test   create .venv, install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo serve test test-fast bench-drift lint up constraints clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/mlops-ops demo

# the online service of one pipeline (docs/serving.md): make serve PIPELINE=churn PORT=8000
PIPELINE ?= churn
PORT ?= 8000
serve: install
	$(BIN)/mlops-ops serve $(PIPELINE) --port $(PORT)

# two workers (the machines have 2 cores); a test file's tests stay on one worker (module fixtures).
# Files are handed out in collection order, which tests/conftest.py sorts longest first: xdist's
# default reorders files by their number of tests, which left the long single-test files
# (distributed loop, backfill, demo) to run one after another at the end.
PYTEST_WORKERS ?= 2
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: install
	$(BIN)/python -m pytest -q $(PYTEST_XDIST)

# everything except the tests marked slow: end-to-end DAG runs, statistical tests over many
# repetitions, tests that train or promote against a real MLflow store
test-fast: install
	$(BIN)/python -m pytest -q $(PYTEST_XDIST) -m "not slow"

# benchmarks: not tests; they print results tables (see benchmarks/README.md)
bench-drift: install
	bash benchmarks/drift/setup_peers.sh
	$(BIN)/python benchmarks/drift/run.py

# ruff and mypy (not part of pytest); .ci/run runs it before `make test`
lint: install
	$(BIN)/ruff check mlops_ops dags plugins tests
	$(BIN)/ruff check --select AIR3 mlops_ops dags plugins
	$(BIN)/mypy mlops_ops

up: install
	$(BIN)/mlops-ops up

# Re-pin after a dependency change: freeze the environment the tests just passed in.
constraints: install
	{ echo "# Pins of the environment the test suite passed in (Python 3.11, $$(date +%F))."; \
	  echo "# Regenerate with \`make constraints\` after changing dependencies, then run \`make test\`."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^mlops-ops'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .mlops .pytest_cache .ruff_cache .mypy_cache *.egg-info
