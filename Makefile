# slimdet: `make demo` and `make test` set everything up from a fresh clone.
# PYTHON=/path/to/python (or an active virtualenv) reuses that environment and its detectron2.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_CMD = $(shell bash tools/setup_env.sh 2> >(grep -v "is ignored" >&2) | tail -n 1)

.PHONY: help setup test demo lint clean

help:
	@echo "make setup  - create .venv (or use PYTHON / active venv), install torch, detectron2, slimdet"
	@echo "make test   - setup, then run the test suite"
	@echo "make demo   - setup, generate synthetic data, train the slimmable Mask R-CNN, evaluate every width"
	@echo "make lint   - setup, then ruff check ."

setup:
	@bash tools/setup_env.sh 2> >(grep -v "is ignored" >&2) >/dev/null

test: setup
	$(PY_CMD) -m pytest tests -q -p no:cacheprovider

lint: setup
	$(PY_CMD) -m ruff check .

demo: setup
	bash tools/demo.sh "$(PY_CMD)"

clean:
	rm -rf output/demo datasets/synthetic
