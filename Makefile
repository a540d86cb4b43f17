# `make run` and `make test` are the README's two commands.
BIN := .venv/bin
STAMP := .venv/.deerid-installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

## set up, start the embedded database and run deerid (ARGS="ingest DIR --detections md.json")
run: $(STAMP)
	$(BIN)/deerid $(ARGS)

## set up, lint and run the whole test suite (PYTEST_ARGS="-k ingest" to narrow)
test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

## ruff (style, complexity, unused arguments) and mypy (src/deerid)
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

## speed and accuracy benchmarks (minutes): medians over repeated runs
bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/backbones.py
	$(BIN)/python benchmarks/encounter_gap.py
	$(BIN)/python benchmarks/review.py --feeder
	$(BIN)/python benchmarks/profile_updates.py
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/million.py
	$(BIN)/python benchmarks/sites.py
	$(BIN)/python benchmarks/workers.py
	$(BIN)/python benchmarks/ranking.py
	$(BIN)/python benchmarks/input_policy.py
	$(BIN)/python benchmarks/adapt.py
	$(BIN)/pip install -q 'opencv-python-headless>=4.5'  # the optional [local] extra
	$(BIN)/python benchmarks/local_features.py
	$(BIN)/python benchmarks/strip.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache artifacts
