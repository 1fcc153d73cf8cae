# make venv       .venv with pinned torch/torchvision, then this package with its test extra
# make data       Fashion-MNIST from Debian's dataset-fashion-mnist package
# make browser    Chromium for the browser test of the HTML report, from Debian's chromium package
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

.PHONY: venv data browser lint test test-fast reproduce figures report compare mutation

venv: $(STAMP)

# Re-run when the dependency list, the TORCH pin or the checkout changes (the stamp holds the
# pin and the folder this package was installed from: a venv shared with another checkout
# would import that one's code); otherwise a no-op. Debian's python3 needs python3-venv for
# ensurepip; install it when we can.
$(STAMP): pyproject.toml FORCE
	@if [ -f $@ ] && [ $@ -nt pyproject.toml ] && [ "$$(cat $@)" = "$(TORCH) from $(CURDIR)" ]; then exit 0; fi; \
	if [ -f $@ ] && [ "$$(cat $@)" != "$(TORCH) from $(CURDIR)" ]; then echo "venv changed: $$(cat $@) -> $(TORCH) from $(CURDIR)"; fi; \
	set -e; \
	if [ ! -x $(VENV)/bin/pip ]; then \
		echo "$(PYTHON) -m venv $(VENV)"; \
		$(PYTHON) -m venv --clear $(VENV) || { \
			[ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && \
			apt-get update && apt-get install -y python3-venv && \
			$(PYTHON) -m venv --clear $(VENV); }; \
	fi; \
	echo "$(PIP) install $(TORCH)"; $(PIP) install $(TORCH); \
	echo "$(PIP) install -e '.[test]'"; $(PIP) install -e '.[test]'; \
	echo '$(TORCH) from $(CURDIR)' > $@

FORCE:

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

# The slow browser test (tests/test_report.py) clicks through the HTML report in headless Chromium,
# driven over the DevTools protocol (benchmarks/report_check.py: no automation package); it looks
# for $$CHROMIUM or one of these names. Without one the test is skipped, and fails where CI is set.
# Installed as root on Debian only (Ubuntu's chromium package is a snap); a failed install is
# reported, not fatal: only that test needs it.
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable

browser:
	@found=""; for name in $$CHROMIUM $(BROWSERS); do \
		command -v $$name >/dev/null 2>&1 && { found=$$(command -v $$name); break; }; \
	done; \
	if [ -n "$$found" ]; then \
		echo "Chromium: $$found"; \
	elif [ "$$(id -u)" = 0 ] && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then \
		{ apt-get update && apt-get install -y --no-install-recommends chromium; } || \
			echo "Installing chromium failed: the browser test will be skipped (it fails where CI is set)." >&2; \
	else \
		echo "No Chromium found: the browser test of the HTML report will be skipped (it fails where CI is set)." >&2; \
		echo "On Debian: sudo apt-get install chromium; elsewhere set CHROMIUM to a Chromium or Chrome executable." >&2; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# -n auto: one pytest-xdist worker per core (WORKERS=0: all in one process); each worker takes
# whole test files, in the order tests/conftest.py gives (long files first).
# --durations=15: CI prints the slowest tests, to keep its run inside its time budget.
WORKERS ?= auto
PYTEST := $(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder

test: venv data browser
	$(PYTEST) --durations=15

test-fast: venv data
	$(PYTEST) -m "not slow and not slurm"

# --forceall: the committed per-run files would otherwise look up to date.
reproduce: venv data
	$(SNAKEMAKE) --cores $(CORES) --forceall

# Every job after the per-run files, forced: Snakemake may take a job whose record it has just
# found stale (a fresh clone's first run after a code change) as up to date.
FIGURE_RULES := check_runs aggregate summarize plot_headline plot_e1 plot_e2 plot_e3 plot_e4 plot_e5 \
	plot_e5_robustness plot_e6 plot_e7 plot_claims latent_separability plot_benchmarks report_summary report_table all
figures: venv
	$(SNAKEMAKE) --cores $(CORES) --forcerun $(FIGURE_RULES) --allowed-rules $(FIGURE_RULES)

# The figures, the summary and every table in one HTML file (workflow/report/workflow.rst;
# docs/workflow.md, "The HTML report").
# Snakemake warns once per file it has no metadata for (every committed result in a fresh
# clone: the run that made it ran elsewhere); those lines are counted, the rest shown.
report: venv
	@mkdir -p logs; status=0; \
	$(SNAKEMAKE) --report results/default/report.html > logs/report.log 2>&1 || status=$$?; \
	awk '/^Missing metadata for file/ { n++; next } { print } \
		END { if (n) print n " files have no Snakemake metadata (made by the committed run, not in this clone): non-critical, the report shows them as they are" }' logs/report.log; \
	exit $$status

# A fresh run's tables and summary against the committed ones ("identical", or the largest
# difference per table; wall-clock columns left out).
compare: venv
	$(PY) src/scripts/compare_results.py --results results/default --ref HEAD

# Mutation score (mutmut) of code that decides results, in a scratch copy of HEAD: MUTATE are the
# files mutated, MUTATION_TESTS the fast tests that must kill each mutant (docs/testing.md has
# the scores and the times). Not part of CI: it takes tens of minutes.
MUTATE ?= src/pipeline/claims/integrity.py src/pipeline/claims/plateau.py src/pipeline/claims/stats.py src/pipeline/claims/robustness.py
MUTATION_TESTS ?= tests/test_claims.py
MUTATION_DIR ?= /tmp/gfe-mutation
MUTATION_JOBS ?= 1
# MUTANTS: mutmut names to run (globs, e.g. "gfe.training.x_validate_run*"); empty: every mutant.
MUTANTS ?=
quoted = $(shell echo $(1) | sed 's/\([^ ]*\)/"\1"/g; s/ /, /g')
mutation: venv
	$(PIP) install -q mutmut==3.8.1
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR) && git archive HEAD | tar -x -C $(MUTATION_DIR)
	printf '\n[tool.mutmut]\npaths_to_mutate = [%s]\ntests_dir = [%s]\npytest_add_cli_args = ["-m", "not slow and not slurm", "-p", "no:cacheprovider"]\nalso_copy = ["src/", "config/", "workflow/", "results/", "tests/"]\n' \
		'$(call quoted,$(MUTATE))' '$(call quoted,$(MUTATION_TESTS) tests/conftest.py tests/helpers.py tests/workflow_helpers.py)' \
		>> $(MUTATION_DIR)/pyproject.toml
	cd $(MUTATION_DIR) && OMP_NUM_THREADS=1 $(abspath $(VENV))/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS) > mutmut.log 2>&1; \
		$(abspath $(VENV))/bin/mutmut export-cicd-stats >/dev/null 2>&1; \
		$(abspath $(VENV))/bin/mutmut results 2>/dev/null | grep -v ': killed\|: not checked' ; \
		$(abspath $(PY)) -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); \
			s["tested"] = sum(s[k] for k in ("killed", "survived", "timeout", "suspicious", "no_tests", "segfault")); \
			print("mutation score: %(killed)d of %(tested)d mutants tested killed (%(timeout)d timed out, " \
			"%(survived)d survived; %(total)d in the files)" % s)'
