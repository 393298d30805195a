# The two commands of the README: `make dev` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/setup.cfg,%,$(wildcard plugins/*/setup.cfg))
STAMP := $(VENV)/.installed

.PHONY: dev test install bench docs clean

$(STAMP): setup.cfg setup.py $(wildcard plugins/*/setup.cfg)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(foreach p,$(PLUGIN_DIRS),-e $(p))
	touch $(STAMP)

install: $(STAMP)

dev: install
	$(BIN)/scheduler-service dev

# Two pytest-xdist processes, each test file kept in one of them (a module's processes and
# fixtures start once). `make test XDIST_ARGS=` runs the suite in a single process.
XDIST_ARGS ?= -n 2 --dist loadfile
# Line coverage of scheduler_service/ and plugins/, the processes the tests start included
# ([coverage:*] in setup.cfg); the report ends with the total. `COVERAGE_ARGS=` turns it off.
COVERAGE_ARGS ?= --cov --cov-report=term

test: install
	$(BIN)/python -m pytest $(XDIST_ARGS) $(COVERAGE_ARGS) $(PYTEST_ARGS)

# Celery, the baseline of one throughput figure, lives in a venv of its own (it needs a
# redis-py ours cannot have); without it that figure is reported as missed.
bench: install
	test -x bench/.celery-venv/bin/celery || { $(PYTHON) -m venv bench/.celery-venv && \
	  bench/.celery-venv/bin/python -m pip install --quiet 'celery[redis]>=5,<6'; } || \
	  echo "make bench: could not build bench/.celery-venv; the Celery figure will be missed"
	$(BIN)/python bench/run_all.py

docs: install
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .data docs/_build *.egg-info
