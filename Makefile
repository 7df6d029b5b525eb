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

# The main job on built-in defaults: the roofline of llama-3.1-8b decode on h100-sxm, one
# report comparing three GPUs for decode and prefill against the committed CPU dataset, and
# one showing the calibrated H100 step under the eager kernel stream and the serving kernels.
demo: $(STAMP)
	$(VENV)/bin/roofsim roofline llama-3.1-8b --hardware h100-sxm --phase decode --batch 1 --context 2048 --dtype bf16 --out $(OUT)
	$(VENV)/bin/roofsim report llama-3.1-8b --hardware h100-sxm-cal,a100-80gb-cal,l4 --phase both --measurements validation/data/cpu-vm-20261129 --out $(OUT)/report
	$(VENV)/bin/roofsim report llama-3.1-8b --hardware h100-sxm-cal --phase decode --launch graph --fusion none,serving --out $(OUT)/fusion
	@echo "demo output: $(OUT)/roofline.png, $(OUT)/ops.csv, the report $(OUT)/report/report.html and fusion none vs serving in $(OUT)/fusion/report.html"

# pytest exits 5 when it collected no tests; that must not pass as green.
# The report test loads the HTML in Debian's headless chromium; without it that one test skips.
test: $(STAMP)
	sh scripts/install-chromium.sh || echo "WARNING: chromium not installed; the browser test will skip"
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(PY) -m tests.benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache
