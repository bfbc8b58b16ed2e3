# `make demo` and `make test` are the two commands a newcomer types; both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench lint clean-demo app docs

install: $(STAMP)

# The project installed in editable mode with every extra; its dependencies are declared in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=64"
	$(PY) -m pip install --quiet --no-build-isolation -e ".[app,ray,convert,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo.py

# The reverse image search app on the demo collection at http://127.0.0.1:7860 (builds what is missing).
# Other flags: make app APP_ARGS="--method dhash --port 8000"
APP_ARGS ?=
app: $(STAMP)
	$(PY) search_app.py --demo $(APP_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The edit-test loop: everything but the tests marked slow (make test and CI still run them all).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# The documentation site (docs/, mkdocs.yml) at http://127.0.0.1:8000; tests/test_docs.py builds it with --strict.
docs: $(STAMP)
	$(VENV)/bin/mkdocs serve

bench: $(STAMP)
	$(PY) -m imsim.benchmarks $(BENCH)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
