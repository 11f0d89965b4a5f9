# The two set-up commands of the README:
#   make serve   install the gateway and serve the bundled demo models on 127.0.0.1:8000
#   make test    install everything the tests need (system programs too) and run lint, types and tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Programs the test suite runs for real; Debian package names.
SYSTEM_PACKAGES := redis-server prometheus prometheus-alertmanager chromium
SYSTEM_PROGRAMS := redis-server promtool prometheus prometheus-alertmanager amtool chromium

.PHONY: serve test test-fast soak bench install-serve install-dev system-deps lint

serve: install-serve
	$(BIN)/servometer serve

test: system-deps install-dev lint
	$(BIN)/python -m pytest

# The unit layer only (tests/layers.py), in under 30 s once the demo models are built; `make test` runs them all.
test-fast:
	$(BIN)/python -m pytest -m unit -q

# The soak at full length (every `make test` runs it for 30 s).
soak: system-deps install-dev
	SERVOMETER_SOAK_S=300 $(BIN)/python -m pytest -m soak

# Not part of the tests: about 100 minutes of load on both cores (wrk from Debian, py-spy from the bench extra).
bench: install-dev
	$(BIN)/python -m pip install --quiet -e '.[cpu,torch,build,report,dev,bench]'
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || { echo "bench needs wrk (Debian package wrk)" >&2; exit 1; }
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.cache
	$(BIN)/python -m bench.profile
	$(BIN)/python -m bench.variants
	$(BIN)/python -m bench.text
	$(BIN)/python -m bench.grpc
	$(BIN)/python -m bench.live

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install-serve: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[cpu,torch,build,report]'

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[cpu,torch,build,report,dev]'

system-deps:
	@missing=""; for program in $(SYSTEM_PROGRAMS); do command -v $$program >/dev/null || missing="$$missing $$program"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	else \
		echo "The tests need these programs:$$missing. Install the Debian packages: $(SYSTEM_PACKAGES)" >&2; exit 1; \
	fi
