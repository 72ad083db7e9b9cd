# Firelane: `make demo` and `make test` do all the set-up on a fresh Debian / Raspberry Pi OS machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SRC    := gateway protocol installer demo firmware tests hil_tests bench tools

.PHONY: setup lint test hil demo bench clean

setup: $(STAMP)

# Re-install whenever the dependency list changes.
$(STAMP): pyproject.toml tools/ensure-system-deps.sh
	tools/ensure-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

lint: setup
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy
	$(BIN)/python tools/lint_project.py
	$(BIN)/python tools/typecheck_firmware.py

test: lint
	$(BIN)/python -m pytest -q -m "not slow" --durations=15

# The long hardware-in-the-loop scenarios, and the few long or load-sensitive tests elsewhere.
hil: setup
	$(BIN)/python -m pytest -q -m slow

demo: setup
	$(BIN)/firelane demo

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
