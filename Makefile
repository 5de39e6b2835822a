# Cloud Janitor. `make demo` shows it, `make test` is what CI runs.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/cloud-janitor/target
VENV := .venv
LOCAL_SFN := statemachine/local
HANDLERS := discovery metric-check lock notify snooze recheck remediate onboard

.PHONY: demo test venv build-venv node_modules build deploy validate lint bench invoke-% clean-venv

$(VENV)/.stamp-dev: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(VENV)/.stamp-build: requirements-build.txt $(VENV)/.stamp-dev
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-build.txt
	touch $@

venv: $(VENV)/.stamp-dev

# aws-local-stepfunctions, asl-validator and Node 22 (as an npm package), for the local run.
$(LOCAL_SFN)/node_modules/.stamp: $(LOCAL_SFN)/package.json $(LOCAL_SFN)/package-lock.json
	npm ci --prefix $(LOCAL_SFN) --no-audit --no-fund --loglevel=error
	touch $@

node_modules: $(LOCAL_SFN)/node_modules/.stamp

build-venv: $(VENV)/.stamp-build

DEPLOY_VENV := .venv-deploy
$(DEPLOY_VENV)/.stamp: requirements-deploy.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-deploy.txt
	touch $@

## demo: a fresh emulator and the twin estate, a scan, then the shipped state machine run
## locally in dry-run, a snooze click, enforce, and the audit trail, as tables.
demo: venv node_modules
	cargo build --quiet --workspace --bins
	bash scripts/demo.sh

## test: everything CI runs: unit, domain, emulator, CLI tests, the template and ASL checks,
## and the shipped state machine run locally (moto and the Slack stub are started by the tests).
test: venv node_modules
	cargo build --workspace --bins --quiet
	cargo test --workspace --all-targets --no-fail-fast

## build: release arm64 Lambda binaries, as SAM deploys them.
build: build-venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 $(addprefix -p ,$(HANDLERS))

## validate: the template and the state machine definition, offline.
validate: venv node_modules
	$(VENV)/bin/cfn-lint template.yaml
	$(LOCAL_SFN)/node_modules/.bin/asl-validator --json-path statemachine/janitor.asl.json

## deploy: sam build (cargo lambda, arm64) and sam deploy with samconfig.toml.
deploy: $(DEPLOY_VENV)/.stamp validate
	SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam validate --lint
	SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam build --beta-features
	SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam deploy

## invoke-<handler>: one handler binary, invoked as Lambda would, with its events/ sample,
## against a fresh emulator (e.g. make invoke-discovery, make invoke-snooze).
invoke-%: venv node_modules
	cargo build --quiet --workspace --bins
	bash scripts/invoke.sh $*

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## bench: 10,000 instances over 4 regions on the emulator: the scan (wall time, memory, AWS
## calls per service), then the shipped state machine run locally in dry-run over them.
bench: venv node_modules
	cargo build --quiet --workspace --bins
	bash scripts/bench.sh

clean-venv:
	rm -rf $(VENV)
