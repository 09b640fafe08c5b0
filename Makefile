# `make test`: set up .venv (torch pinned through constraints.txt) and run the tests.
# `make demo`: set up and run the main job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt
STAMP := $(VENV)/.orthoact-installed

.PHONY: setup test test-fast demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test]"
	# PAU's rational-activations (parity tests) pins torch 1.7.1; its PyTorch code runs on current torch
	$(PY) -m pip install -q --no-deps rational-activations==0.2.0
	$(PY) -c "import orthoact; i = orthoact.ops.load_fused_kernels(); print('fused CPU kernels:', i.error or ('compiled in %.1f s' % i.seconds if i.compiled else 'cached'))"
	touch $@

test: $(STAMP)
	$(PY) -m ruff check --no-cache .
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m ruff check --no-cache .
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) -m orthoact demo

bench: $(STAMP)
	$(PY) benchmarks/cpu_activations.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
