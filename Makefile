# taskboard — one command to run it, one to test it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint typecheck pytest test-postgres test-faults bench bench-throughput bench-dashboard messages clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "taskboard needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

## make run: migrate, then the web server and a Celery worker together (Ctrl-C stops both).
run: install
	SGM_ADDRESS=$(HOST):$(PORT) $(BIN)/python -m sgm.run

## make test: linters, type check and the whole suite (SQLite unless DATABASE_URL is set).
test: lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy .

pytest: install
	$(BIN)/pytest

## make test-postgres: the suite again on PostgreSQL.
test-postgres: install
	DATABASE_URL=$(POSTGRES_URL) $(BIN)/pytest

## make test-faults: the fault-injection suite (workers killed, PostgreSQL and Redis stopped).
test-faults: install
	DATABASE_URL=$(POSTGRES_URL) $(BIN)/pytest -m faults tests/faults

## make bench: tracking overhead against untracked and django-celery-results, then what
## each index of the list costs the tracking writes (PostgreSQL).
bench: install
	$(BIN)/python bench/tracking_overhead.py
	$(BIN)/python bench/index_cost.py

## make bench-throughput: tracked noop tasks/s with 1, 2 and 4 workers on a private PostgreSQL
## cluster, its CPU ms per task and tasks/s per PostgreSQL core; WORKERS=1,2 to change.
WORKERS ?= 1,2,4
bench-throughput: install
	$(BIN)/python bench/throughput.py --workers $(WORKERS)

## make bench-dashboard: the dashboard's pages and fragments at 10k and 1M rows (PostgreSQL,
## gunicorn as compose runs it); ROWS=10000,100000 LOAD=--load to change what it measures.
ROWS ?= 10000,1000000
bench-dashboard: install
	$(BIN)/python bench/dashboard_scale.py --rows $(ROWS) $(LOAD)

## make messages: refresh and compile the Spanish and English catalogs (needs GNU gettext).
messages: install
	$(BIN)/python manage.py makemessages -l es -l en --ignore='.venv/*' --ignore='tests/*' --ignore='bench/*'
	$(BIN)/python manage.py compilemessages --ignore='.venv/*'

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
