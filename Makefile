# The two set-up commands of the README:
#   make demo   installs everything into .venv and runs the demo workflow end to end
#   make test   installs everything and runs the linters and the whole test suite (as root it
#               also starts a one-node SLURM cluster for the cluster tests, and stops it)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@# uv resolves and installs the same binary wheels as pip, in parallel: well under a
	@# minute on a 2-core machine where pip takes two. Compiled bytecode, as pip writes it:
	@# without it every job compiles TensorFlow's modules again where PYTHONDONTWRITEBYTECODE
	@# is set, 15 seconds a job.
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[cpu,dev]"
	touch $@

# NIH's real metadata files, as redistributed inside these wheels, for the tests that check
# parse_metadata on them (the wheels are not installed): 1.5.7 holds Data_Entry_2017_v2020.csv
# (the paper's Table 1), 0.0.20 the original Data_Entry_2017.csv.
NIH_METADATA := $(VENV)/nih-metadata/.downloaded
$(NIH_METADATA): $(VENV)/.installed
	$(BIN)/pip download --quiet --no-deps --dest $(VENV)/nih-metadata torchxrayvision==1.5.7
	$(BIN)/pip download --quiet --no-deps --dest $(VENV)/nih-metadata torchxrayvision==0.0.20
	touch $@

demo: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

test: lint $(NIH_METADATA)
	@if [ "$$(id -u)" = 0 ]; then \
	    tests/slurm/start-cluster.sh || exit 1; \
	    REQUIRE_SLURM=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	    status=$$?; tests/slurm/stop-cluster.sh; exit $$status; \
	else \
	    echo "not root: the SLURM cluster tests are skipped (run as root to include them)"; \
	    PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slurm" $(PYTEST_ARGS); \
	fi

bench: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python tests/benchmarks/run.py
	$(BIN)/python tests/benchmarks/bench_report.py

clean:
	rm -rf results logs benchmarks .snakemake report.zip
