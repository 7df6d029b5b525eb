# All set-up lives here: `make demo` and `make test` create and use .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out/demo

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned to the CPU build on local disk; see README.
	$(PY) -m pip install -q -e '.[test,dask]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/roofsim roofline llama-3.1-8b --hardware h100-sxm --phase decode --batch 1 --context 2048 --dtype bf16 --out $(OUT)
	@echo "demo output: $(OUT)/roofline.png and $(OUT)/ops.csv"

# pytest exits 5 when it collected no tests; that must not pass as green.
test: $(STAMP)
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(PY) -m tests.benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache
