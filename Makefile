# `make test` and `make demo` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint unit demo bench clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check instpy tests bench
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

test: lint unit

demo: $(STAMP)
	$(PY) fixtures/demo/demo.py

bench: $(STAMP)
	$(PY) bench/overhead.py
	$(PY) bench/build_speed.py
	$(PY) bench/trampoline.py
	$(PY) bench/http_rps.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
