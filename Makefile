# The README's two commands: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-test.txt | cksum | cut -d' ' -f1)
SCALE_STAMP := $(VENV)/.scale-$(shell cat requirements-scale.txt | cksum | cut -d' ' -f1)
PORT ?= 8501
HF_HUB_OFFLINE ?= 1
# Models load from local files only; `make run HF_HUB_OFFLINE=0` lets a configured hub id download.

.PHONY: setup run test demo-db bench browser clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-test.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The optional scale extras (Ray Data, ONNX Runtime): installed for the tests, not needed to run.
$(SCALE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -r requirements-scale.txt
	rm -f $(VENV)/.scale-*
	touch $(SCALE_STAMP)

setup: $(STAMP)

demo-db: $(STAMP)
	HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) $(BIN)/python -m coldrec init --if-missing

# `make run` loads the demo only into the default database (COLDREC_DB unset or data/coldrec.duckdb):
# a database of your own (`COLDREC_DB=/tmp/new.duckdb make run`) opens as it is, empty or not.
# `make demo-db` loads the demo into whichever database COLDREC_DB names, if it holds nothing yet.
ifeq ($(filter-out data/coldrec.duckdb ./data/coldrec.duckdb,$(COLDREC_DB)),)
run: demo-db
else
run: setup
endif
	@echo "coldrec dashboard: open http://localhost:$(PORT) in a browser (Ctrl+C stops it)"
	HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) $(BIN)/streamlit run app.py --server.port $(PORT)

# pyflakes rules first: an undefined name (a NameError waiting for the page that runs it) fails fast.
test: $(STAMP) $(SCALE_STAMP)
	$(BIN)/ruff check --select F .
	HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) $(BIN)/python -m pytest

bench: $(STAMP)
	HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) $(BIN)/python benchmarks/bench_evaluate.py
	HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) $(BIN)/python benchmarks/bench_audience.py
	HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) $(BIN)/python benchmarks/bench_upload.py

clean:
	rm -rf $(VENV) .pytest_cache

# Debian's Chromium for the browser test (what .ci/run does on a fresh machine).
browser:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)
