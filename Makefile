# `make demo` and `make test` each create or refresh .venv first (a no-op when nothing changed).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hiw-installed
MEDIAPIPE := mediapipe==0.10.14

# Keep every cache and tool home inside the project (ignored by git).
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export XDG_CACHE_HOME := $(CURDIR)/.cache
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export HF_HOME := $(CURDIR)/.cache/huggingface
export PREFECT_HOME := $(CURDIR)/.cache/prefect
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: here it resolves to the local CPU wheel instead of the CUDA build
	$(PY) -m pip install -q torch==2.13.0
	# mediapipe without jax/opencv-contrib; its runtime deps come from pyproject
	$(PY) -m pip install -q --no-deps $(MEDIAPIPE)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hiw demo --out hiw-demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_motion.py
	$(PY) benchmarks/bench_shift.py

clean:
	rm -rf $(VENV) .cache build *.egg-info
