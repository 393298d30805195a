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

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

docs: install
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .data docs/_build *.egg-info
