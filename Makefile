# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; a plain "torch" from PyPI is a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# Optional extras beside the test tools: CI adds `ray` so the Ray executor's tests run against a real Ray.
EXTRAS ?= dev

.PHONY: demo test test-fast lint setup bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/kdtui demo $(DEMO_ARGS)

# Test processes (pytest-xdist). Most tests wait on child processes (workers, evals, a Ray head), so three
# processes keep two cores busy; each runs its math on one thread (tests/conftest.py).
TEST_WORKERS ?= 3
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# kdtui's bytecode first: hundreds of test subprocesses each import it, and where PYTHONDONTWRITEBYTECODE is set
# (CI images) every one would compile it again.
test: $(VENV)/.installed
	$(PY) -m compileall -q kdtui tests > /dev/null
	$(PYTEST) $(PYTEST_ARGS)

# The inner loop: everything but the long end-to-end paths (marked slow).
test-fast: $(VENV)/.installed
	$(PY) -m compileall -q kdtui tests > /dev/null
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check kdtui tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(PY) benchmarks/extract_bench.py
