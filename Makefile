# igpt — two commands: `make demo` runs the whole pipeline, `make test` runs the test suite.
# Both create .venv if it is missing and install what a fresh machine needs; re-running is cheap.
#
# torch: on a machine without a GPU, a plain `pip install torch` pulls a multi-GB CUDA build. We install
# torch first, from TORCH_SPEC (and TORCH_INDEX when set), so the rest of the install finds it satisfied:
#   make demo                                                     # torch==2.13.0 (a CPU wheel is found locally here)
#   make demo TORCH_SPEC=torch TORCH_INDEX=https://download.pytorch.org/whl/cpu    # CPU wheel from PyTorch's index
#   make demo TORCH_SPEC='torch>=2.13' TORCH_INDEX=https://download.pytorch.org/whl/cu128   # a CUDA build

# Idle OpenMP threads spin by default; on a shared 2-core machine that made small matmuls ~80x slower whenever a
# second process ran (measured: 22.6 s -> 5.2 s per 256 sampled sequences with PASSIVE). The test targets start
# processes beside each other, so they set PASSIVE. `make demo` runs one busy process (the notebook kernel), where
# PASSIVE made sampling 1.7x slower (docs/experiments/2026-12-06-mini-world.md), so it leaves the default.
test reliability browser-test: export OMP_WAIT_POLICY ?= PASSIVE

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev,notebook
PROFILE ?= tiny
RUN ?= runs/$(PROFILE)

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test reliability browser-test lab bench install lint clean-runs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
	touch $(STAMP)

install: $(STAMP)

# The whole pipeline on the default profile, by executing the numbered notebooks in order.
# Executed copies and an HTML report land in $(RUN)/notebooks/.
demo: $(STAMP)
	$(BIN)/igpt notebooks --config $(PROFILE) --run-dir $(RUN)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The long variants of the reliability tests (docs/testing.md, "Reliability"): every stage SIGKILLed at random points and
# resumed, the whole pipeline twice for determinism, 200 fuzz cases per input format, the ranking store killed 100
# times. About 10 minutes on 2 cores.
reliability: $(STAMP)
	$(BIN)/python -m pytest -q -m reliability

# The widgets in a real browser: JupyterLab on localhost driven by headless Chromium (Playwright, pointed at
# Debian's chromium: no browser download). Installs chromium with apt-get when it is missing and we are root.
# Screenshots land in runs/browser/screenshots/.
browser-test: $(VENV)/.browser
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends chromium; \
	  else echo "browser-test needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }
	$(BIN)/python -m pytest -q -m browser tests/test_browser.py

$(VENV)/.browser: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS),browser]"
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check igpt tests

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Benchmarks against TRL (benchmarks/results.md). TRL's PPO trainer left TRL in 1.13, so the PPO baseline runs
# TRL 1.12 from its own venv, with the same torch and transformers as ours; .venv is not touched.
TRL112 := benchmarks/.venv-trl112

$(TRL112)/.installed:
	$(PYTHON) -m venv $(TRL112)
	$(TRL112)/bin/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(TRL112)/bin/python -m pip install -q trl==1.12.0 "transformers==$$($(BIN)/python -c 'import transformers; print(transformers.__version__)')"
	touch $@

bench: $(STAMP) $(TRL112)/.installed
	$(BIN)/python benchmarks/run.py

clean-runs:
	rm -rf runs/
