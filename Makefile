# migrate-fs: make demo | make lint | make test | make check
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo lint test e2e check bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint,cluster]'
	# highdicom's tables of the standard, for tests/test_iods.py (its data only: no pillow)
	$(BIN)/pip install --quiet --no-deps 'highdicom>=0.28.2,<0.29'
	touch $(STAMP)

demo: venv
	rm -rf sample_export sample_export.* out manifests/demo
	$(BIN)/python scripts/make_sample_export.py sample_export
	$(BIN)/migrate-fs run sample_export --out out --run demo
	$(BIN)/migrate-fs report --run demo --html manifests/demo/report/report.html
	@echo "Output: ./out   Manifests: ./manifests/demo/{inventory,plan,result}"
	@echo "Report (one HTML file, open it in a browser): ./manifests/demo/report/report.html"
	@echo "Plan again with the example rules and legacy DB corrections:"
	@echo "  $(BIN)/migrate-fs plan --run demo --config sample_export.rules.toml --corrections sample_export.corrections.csv"

lint: venv
	$(BIN)/ruff check migrate_fs tests scripts
	$(BIN)/mypy

test: venv
	$(BIN)/python -m pytest -q

# the import into a real PACS (Orthanc, dcmsend): part of `make test` when they are installed
e2e: venv
	$(BIN)/python -m pytest -q tests/test_pacs_e2e.py

check: lint test

bench: venv
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_diff.py

clean:
	rm -rf $(VENV) sample_export sample_export.* out manifests/demo .pytest_cache
