# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch. A bare `torch` requirement can pull a multi-GB CUDA build, so the
# venv gets this wheel first whenever it has no torch at all.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.fitwatch-installed

.PHONY: demo test test-fast zoo bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fitwatch demo

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

zoo: $(STAMP)
	$(PY) -m benchmarks.zoo

bench: $(STAMP)
	$(PY) -m benchmarks.overhead

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache build src/*.egg-info
