# Two entry points: `make run` serves the API, `make test` runs lint, types and the test suite.
# Both create .venv and install requirements.txt on a fresh clone; nothing else is needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when the requirements or the package metadata change.
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest gunicorn clean bench

run: $(STAMP)
	$(BIN)/python infra_api.py

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy infra offline_pulumi infra_api.py gunicorn.conf.py tests

pytest: $(STAMP)
	$(BIN)/python -m pytest

gunicorn: $(STAMP)
	$(BIN)/gunicorn -c gunicorn.conf.py infra_api:application

bench: $(STAMP)
	$(BIN)/python -m bench

$(STAMP): requirements.txt setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

clean:
	rm -rf .state .mypy_cache .pytest_cache .ruff_cache *.egg-info
