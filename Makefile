# Cloud Janitor. `make demo` shows it, `make test` is what CI runs.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/cloud-janitor/target
VENV := .venv
HANDLERS := discovery metric-check lock notify snooze recheck remediate

.PHONY: demo test venv build-venv build lambdas lint bench invoke-% clean-venv

$(VENV)/.stamp-dev: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(VENV)/.stamp-build: requirements-build.txt $(VENV)/.stamp-dev
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-build.txt
	touch $@

venv: $(VENV)/.stamp-dev

build-venv: $(VENV)/.stamp-build

## demo: a fresh emulator, the twin estate, then detection in dry-run, as tables.
demo: venv
	cargo build --quiet -p janitor -p testkit
	bash scripts/demo.sh

## test: everything CI runs (unit, domain, emulator and CLI tests; moto is started by the tests).
test: venv
	cargo test --workspace --all-targets --no-fail-fast

## build: release arm64 Lambda binaries, as SAM deploys them.
build: build-venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 $(addprefix -p ,$(HANDLERS))

## invoke-<handler>: run a handler locally (cargo lambda watch must be running) with its events/ sample.
invoke-%: build-venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda invoke $* --data-file events/$*.json

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## bench: 2,000 instances over 2 regions on the emulator; wall time and AWS calls per service.
bench: venv
	cargo build --quiet -p janitor -p testkit
	bash scripts/bench.sh

clean-venv:
	rm -rf $(VENV)
