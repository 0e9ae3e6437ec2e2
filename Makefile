# The two set-up commands: `make demo` and `make test`. Each creates .venv if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# the viewer's OpenSeadragon, from npm (`histoexpr view` says how when it is missing)
	-command -v npm >/dev/null 2>&1 && npm install -s --no-audit --no-fund \
	  --prefix $(VENV)/share/histoexpr-js openseadragon@^6
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/histoexpr demo --out demo_out

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_tiling.py
	$(BIN)/python benchmarks/bench_image_open.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf demo_out .pytest_cache build *.egg-info src/*.egg-info
