# Two entry points: `make run` serves the API, `make test` runs lint, types and the test suite.
# Both create .venv and install requirements.txt on a fresh clone; `make test` (and `make bench`)
# also install Debian's PostgreSQL server and `make test` Debian's chromium when they are missing
# and we are root (CI is).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when the requirements or the package metadata change.
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest gunicorn clean bench postgres-server chromium

# The postgres:// tests start a throwaway server (initdb + pg_ctl on loopback, see
# tests/pgserver.py); the package's own cluster is not created, so nothing else listens.
PG_INITDB = $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb))

run: $(STAMP)
	$(BIN)/python infra_api.py

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy infra offline_pulumi infra_api.py gunicorn.conf.py tests bench

pytest: $(STAMP) postgres-server chromium
	$(BIN)/python -m pytest

gunicorn: $(STAMP)
	$(BIN)/gunicorn -c gunicorn.conf.py infra_api:application

bench: $(STAMP) postgres-server
	$(BIN)/python -m bench
	$(BIN)/python -m bench.backend

postgres-server:
ifeq ($(PG_INITDB),)
	@if [ "$$(id -u)" -ne 0 ]; then \
	  echo "no PostgreSQL server found: run 'sudo make postgres-server' or set PG_BINDIR" >&2; \
	  exit 1; fi
	mkdir -p /etc/postgresql-common/createcluster.d
	echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/50-burner-api.conf
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
endif

# The portal tests (tests/portal) drive Debian's chromium through Playwright; Playwright's own
# browser downloads are never used.
CHROMIUM = $(shell command -v chromium)

chromium:
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" -ne 0 ]; then \
	  echo "no chromium found: run 'sudo make chromium'" >&2; \
	  exit 1; fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
endif

$(STAMP): requirements.txt setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

clean:
	rm -rf .state .cache .mypy_cache .pytest_cache .ruff_cache *.egg-info
