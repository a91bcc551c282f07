# Expansion — two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The base of the links in messages (unsubscribe, preferences, click tracking) follows the
# server's address, `make run PORT=8111` included, unless SITE_URL is set in the environment
# (a public address behind a proxy). Exported: the web server, the worker and beat agree.
SITE_URL ?= http://$(HOST):$(PORT)
export SITE_URL
# With no mail server configured, `make run` writes each email to var/mail/ instead.
export EMAIL_BACKEND ?= django.core.mail.backends.filebased.EmailBackend

# With no DATABASE_URL, the database is the embedded PostgreSQL (expansion/embedded.py, data in
# var/postgres): started before the command, stopped after it if it was not already running.
WITH_DB := $(if $(DATABASE_URL),,$(BIN)/python -m expansion.embedded run --)

.PHONY: run serve test install lint typecheck bench clean db-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	@mkdir -p var
	@$(WITH_DB) $(MAKE) --no-print-directory serve

# The body of `make run`, with the database up. Ctrl-C stops the three processes — the worker
# and beat are sent TERM (a warm shutdown) and waited for — and only then the embedded
# database (its data is kept for the next `make run`).
serve:
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo --if-empty
	$(MANAGE) ensure_admin
	@echo "Admin: http://$(HOST):$(PORT)/admin/   API docs: http://$(HOST):$(PORT)/api/docs/   Links in messages: $(SITE_URL)"
	@trap 'trap - EXIT INT TERM; kill -TERM $$(jobs -p) 2>/dev/null; wait' EXIT INT TERM; \
	$(BIN)/celery -A expansion worker --loglevel=INFO --concurrency=2 & \
	$(BIN)/celery -A expansion beat --loglevel=INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler & \
	$(MANAGE) runserver --noreload $(HOST):$(PORT)

test: install
	$(WITH_DB) $(BIN)/pytest

db-stop: install
	$(BIN)/python -m expansion.embedded stop

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy expansion learners campaigns experiments templates

bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var
