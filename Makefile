# The commands the README names. `make run` and `make test` work on a fresh machine
# with Python 3.11: they create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-sqlite lint format setup demo-model install install-dev clean-venv

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

# Every step is quick when there is nothing to do, so a second `make run` starts in
# seconds: static files are collected again only when they changed, and the shipped
# model (models/ich-seg-ctich) is activated only when no CT model is active.
setup: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py static_ensure
	$(BIN)/python manage.py demo_users
	$(BIN)/python manage.py model_ensure

run: setup
	$(BIN)/python scripts/runportal.py

# The phantom demo model instead of the shipped one: trained on synthetic heads in a
# few minutes (once), for trying retraining and promotion; its results on real scans
# mean nothing. `manage.py model_ensure --replace` goes back to the shipped model.
demo-model: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py model_ensure --demo --replace

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

# The same suite on SQLite and the in-memory broker, as on a machine without services.
test-sqlite: install-dev
	TEST_BACKENDS=sqlite $(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ml
	DJANGO_SECRET_KEY=lint-only DATA_DIR=$$(mktemp -d) \
		$(BIN)/python manage.py makemigrations --check --dry-run

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
