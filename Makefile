# Run, test and clean the relay. Targets create .venv with $(PYTHON) when it is missing.

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
# pip runs only when a requirements file is newer than the stamp of its last install.
RUNTIME_STAMP := $(VENV)/.requirements.stamp
DEV_STAMP := $(VENV)/.requirements-dev.stamp

.PHONY: run test test-slow bench clean distclean

run: $(RUNTIME_STAMP)
	$(VENV_PYTHON) app.py

test: $(DEV_STAMP)
	$(VENV_PYTHON) -m pytest -q

# Only the tests marked slow: a memcached restart and a short load run (bench/load.py).
test-slow: $(DEV_STAMP)
	$(VENV_PYTHON) -m pytest -q -m slow

bench: $(DEV_STAMP)
	$(VENV_PYTHON) -m bench.run

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install -r requirements-dev.txt
	touch $@

# Removes caches and install stamps but keeps .venv, which is slow to rebuild.
clean:
	rm -rf .pytest_cache .hypothesis $(RUNTIME_STAMP) $(DEV_STAMP)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
