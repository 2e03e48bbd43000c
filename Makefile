# Edge Allocator - every target works from a fresh clone (the venv and binaries are made here).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EA := $(BIN)/edge-allocator
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help venv host-deps binaries cluster cluster-down lint test test-unit test-real image demo demo-down bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed ## create .venv and install the package with its dev tools

host-deps: ## Debian packages the tests need (installed when missing and root; else says what)
	@bash hack/host-deps.sh test

binaries: venv ## build (once) the Kubernetes, etcd, kwok, metrics-server and helm binaries
	$(EA) dev build

cluster: venv ## start the dev cluster (idempotent); KUBECONFIG=.cache/devcluster/kubeconfig
	$(EA) dev up

cluster-down: venv ## stop the dev cluster and remove its state
	$(EA) dev down

lint: venv ## ruff + mypy strict
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: host-deps lint binaries ## lint, unit, integration and e2e tests, then the real-node e2e (root)
	@bash hack/host-deps.sh real
	$(EA) dev build --real-node >/dev/null
	$(BIN)/pytest $(PYTEST_ARGS)
	$(BIN)/pytest -m real_node tests/e2e/test_real_helm.py -s $(PYTEST_ARGS)

image: venv ## build the image from the Dockerfile with buildah (no Docker; root)
	@bash hack/host-deps.sh real
	$(EA) dev image

test-real: venv ## only the real-node e2e: image + helm install on a real kubelet (root; port 36543)
	@bash hack/host-deps.sh real
	$(EA) dev build --real-node >/dev/null
	$(BIN)/pytest -m real_node tests/e2e/test_real_helm.py -s $(PYTEST_ARGS)

test-unit: venv ## unit tests only (no cluster)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: binaries ## the main job: cluster, extender, scheduler, operator, examples, dashboard
	$(BIN)/python -m edge_allocator.demo up $(DEMO_ARGS)

demo-down: venv ## stop everything the demo started (its processes and the dev cluster)
	$(BIN)/python -m edge_allocator.demo down $(DEMO_ARGS)

bench: binaries ## benchmarks (results as JSON under .cache/bench/): extender verb latency, scheduling throughput
	@mkdir -p .cache/bench
	$(BIN)/python bench/extender_latency.py --json .cache/bench/extender_latency.json
	$(BIN)/python bench/extender_throughput.py --json .cache/bench/extender_throughput.json
