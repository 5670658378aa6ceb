# Two commands set the project up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest demo bench constraints clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,local]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check model_training stream_app tests benchmarks examples
	$(BIN)/ruff format --check model_training stream_app tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

# One test process per core; a file's tests stay together (they share module fixtures and
# servers), and every process starts its own broker and Redis on free ports.
pytest: $(STAMP)
	$(BIN)/pytest -n auto --dist loadfile

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/rfm demo

bench: $(STAMP)
	$(BIN)/python benchmarks/train_steps.py

# constraints.txt pins every runtime library (what the Docker image installs, and what a
# model artifact records): regenerate it after changing the dependencies in pyproject.toml.
constraints:
	rm -rf build/constraints-venv
	$(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/python -m pip install --quiet --upgrade pip
	build/constraints-venv/bin/python -m pip install --quiet .
	{ echo "# The runtime libraries of the image, pinned: \`make constraints\` writes this file."; \
	  build/constraints-venv/bin/python -m pip freeze --exclude rfm-segments; } > constraints.txt
	rm -rf build/constraints-venv

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info demo-output
