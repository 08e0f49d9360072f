# Set-up, tests, demo and benchmarks. Everything runs inside $(VENV), created on first use.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
MAX_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.deps-torch-$(TORCH_VERSION)
NATIVE_SOURCES := $(shell find csrc tools -type f) setup.py pyproject.toml

.PHONY: install build test test-all test-kernels demo bench clean

install: build

# Python deps once per torch version (torch first and pinned: an unpinned torch pulls GBs of CUDA wheels).
$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q pybind11 ninja numpy
	touch $@

# Editable install: the extension is (re)built in place by ninja, incrementally, when csrc/ changes.
$(VENV)/.built: $(STAMP) $(NATIVE_SOURCES)
	MAX_JOBS=$(MAX_JOBS) $(PIP) install -q --no-build-isolation -e ".[test]"
	touch $@

build: $(VENV)/.built

test: build
	$(PY) -m pytest -q tests --durations=25

# The tests that compare numbers, once under each other CPU kernel set (docs/testing.md): ATen's scalar and AVX2
# kernels instead of the best this CPU has, and oneDNN (convolutions) held to AVX2.
KERNEL_SETTINGS ?= ATEN_CPU_CAPABILITY=default ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
KERNEL_TESTS ?= tests/test_networks_and_optim.py tests/test_ops.py tests/test_dqn.py tests/test_multitask_dqn.py \
	tests/test_distill.py tests/test_transfer.py tests/test_experts_together.py tests/test_run_loop.py
test-kernels: build
	@set -e; for setting in $(KERNEL_SETTINGS); do \
		echo "== $$setting"; env $$setting $(PY) -m pytest -q $(KERNEL_TESTS); \
	done

demo: build
	$(PY) -m actormimic_fast.apps.demo $(DEMO_ARGS)

bench: build
	$(PY) -m pytest -q benchmarks --benchmark-only --benchmark-columns=min,median,mean,rounds

clean:
	rm -rf build *.egg-info actormimic_fast/*.so $(VENV)/.built
