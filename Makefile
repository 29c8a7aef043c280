# slimdet: `make demo` and `make test` set everything up from a fresh clone.
# PYTHON=/path/to/python (or an active virtualenv) reuses that environment and its detectron2.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_CMD = $(shell bash tools/setup_env.sh 2> >(grep -v "is ignored" >&2) | tail -n 1)

SEEDS ?= 0
TASK ?= mask
RECIPES ?=
JOBS ?= 2
RECORDS ?=
PRETRAINED ?=

.PHONY: help setup test demo compare lint clean

help:
	@echo "make setup  - create .venv (or use PYTHON / active venv), install torch, detectron2, slimdet"
	@echo "make test   - setup, then run the test suite"
	@echo "make demo   - setup, generate synthetic data, train the slimmable Mask R-CNN, evaluate every width"
	@echo "make compare [TASK=mask|keypoint|faster] [SEEDS=\"0 1 2\"] [RECIPES=\"sum mean clip widthclip\"] [JOBS=2] [RECORDS=DIR] [PRETRAINED=1]"
	@echo "             - setup, generate the clutter data, train the slimmable R-CNN and one"
	@echo "               individual model per width, seed and recipe, compare them"
	@echo "make lint   - setup, then ruff check ."

setup:
	@bash tools/setup_env.sh 2> >(grep -v "is ignored" >&2) >/dev/null

test: setup
	$(PY_CMD) -m pytest tests -q -p no:cacheprovider

lint: setup
	$(PY_CMD) -m ruff check .

demo: setup
	bash tools/demo.sh "$(PY_CMD)"

compare: setup
	$(PY_CMD) tools/compare_study.py --task $(TASK) --seeds $(SEEDS) $(if $(RECIPES),--recipes $(RECIPES)) \
		--jobs $(JOBS) --output output/compare_$(TASK) $(if $(RECORDS),--records $(RECORDS)) $(if $(PRETRAINED),--pretrained)

clean:
	rm -rf output/demo output/compare_* datasets/synthetic datasets/clutter datasets/clutter_people datasets/clutter_classes
