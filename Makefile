# Two commands: `make run` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
PUBLIC_URL ?= http://127.0.0.1:$(PORT)
export PORT PUBLIC_URL

.PHONY: install run test bench bench-admin lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/python manage.py migrate --noinput -v0
	@echo "Connect is starting at http://127.0.0.1:$(PORT)/admin/"
	@$(BIN)/python manage.py demo
	@$(BIN)/honcho -f config/Procfile -d . start

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/inprocess.py
	$(BIN)/python benchmarks/forwarding.py

# Admin lists at 100k installations / 1M events (seeds its own database once: minutes).
bench-admin: $(STAMP)
	$(BIN)/python benchmarks/admin_lists.py

clean:
	rm -rf $(VENV) var
