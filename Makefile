# The commands the README names. `make run` and `make test` work on a fresh machine
# with Python 3.11: they create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-sqlite lint format setup install install-dev migrate ci clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

.env:
	$(BIN)/python scripts/ensure_env.py

setup: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py static_ensure
	$(BIN)/python manage.py demo_users
	$(BIN)/python manage.py model_ensure --demo

run: setup
	$(BIN)/python scripts/runportal.py

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

# The same suite on SQLite and the in-memory broker, as on a machine without services.
test-sqlite: install-dev
	TEST_BACKENDS=sqlite $(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SECRET_KEY=lint-only DATA_DIR=$$(mktemp -d) \
		$(BIN)/python manage.py makemigrations --check --dry-run

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
