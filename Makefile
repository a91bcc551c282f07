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

.PHONY: run test install lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	@mkdir -p var
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo --if-empty
	$(MANAGE) ensure_admin
	@echo "Admin: http://$(HOST):$(PORT)/admin/   API docs: http://$(HOST):$(PORT)/api/docs/   Links in messages: $(SITE_URL)"
	@trap 'trap - EXIT INT TERM; kill 0' EXIT INT TERM; \
	$(BIN)/celery -A expansion worker --loglevel=INFO --concurrency=2 & \
	$(BIN)/celery -A expansion beat --loglevel=INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler & \
	$(MANAGE) runserver --noreload $(HOST):$(PORT)

test: install
	$(BIN)/pytest

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
