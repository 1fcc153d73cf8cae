# make venv       .venv with pinned torch/torchvision, then this package with its test extra
# make data       Fashion-MNIST from Debian's dataset-fashion-mnist package
# make lint       ruff check and ruff format --check (configured in pyproject.toml)
# make test       the test suite (make test-fast: the day-to-day tier, pytest -m "not slow")
# make reproduce  recompute the whole replication from the raw data (--forceall; CORES=all)
# make figures    rebuild the tables, summary and figures from the committed per-run files
# make report     the HTML report results/default/report.html (from the results as they are)
# make compare    how results/default differs from the committed reference (after reproduce)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SNAKEMAKE := $(VENV)/bin/snakemake
CORES ?= all
# The tested versions; other torch >= 2.4 releases work too (make venv TORCH="torch torchvision").
TORCH ?= torch==2.14.1 torchvision==0.29.1
FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
STAMP := $(VENV)/.gfe-installed

.PHONY: venv data lint test test-fast reproduce figures report compare

venv: $(STAMP)

# Re-run when the dependency list changes; otherwise a no-op.
# Debian's python3 needs python3-venv for ensurepip; install it when we can.
$(STAMP): pyproject.toml
	@if [ ! -x $(VENV)/bin/pip ]; then \
		echo "$(PYTHON) -m venv $(VENV)"; \
		$(PYTHON) -m venv --clear $(VENV) || { \
			[ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && \
			apt-get update && apt-get install -y python3-venv && \
			$(PYTHON) -m venv --clear $(VENV); }; \
	fi
	$(PIP) install $(TORCH)
	$(PIP) install -e '.[test]'
	touch $@

data:
	@if [ -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST: $(FASHION_MNIST)"; \
	elif [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then \
		apt-get update && apt-get install -y dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST not found in $(FASHION_MNIST)." >&2; \
		echo "On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist" >&2; \
		echo "Elsewhere: put the four original .gz files (train-images-idx3-ubyte.gz, ...) there," >&2; \
		echo "or let torchvision download them where the network allows." >&2; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# -n auto: one pytest-xdist worker per core (WORKERS=0: all in one process); each worker takes
# whole test files, in the order tests/conftest.py gives (long files first).
# --durations=15: CI prints the slowest tests, to keep its run inside its time budget.
WORKERS ?= auto
PYTEST := $(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder

test: venv data
	$(PYTEST) --durations=15

test-fast: venv data
	$(PYTEST) -m "not slow and not slurm"

# --forceall: the committed per-run files would otherwise look up to date.
reproduce: venv data
	$(SNAKEMAKE) --cores $(CORES) --forceall

figures: venv
	$(SNAKEMAKE) --cores $(CORES) --forcerun aggregate --allowed-rules aggregate summarize \
		plot_headline plot_e1 plot_e2 plot_e3 plot_e4 plot_e5 plot_e5_robustness plot_e6 plot_e7 plot_claims \
		latent_separability plot_benchmarks \
		report_summary report_table all

# The figures, the summary and every table in one HTML file (workflow/report/workflow.rst;
# docs/workflow.md, "The HTML report").
report: venv
	$(SNAKEMAKE) --report results/default/report.html

# A fresh run's tables and summary against the committed ones ("identical", or the largest
# difference per table; wall-clock columns left out).
compare: venv
	$(PY) src/compare_results.py --results results/default --ref HEAD
