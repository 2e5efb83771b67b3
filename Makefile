# Entry points; each target is a small script under scripts/ (run `make help`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK ?= dev

.PHONY: help up destroy test toolchain platform platform-down cluster cluster-down venv bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

up: ## Bring up STACK (default dev) from nothing and print its URL
	@scripts/up.sh $(STACK)

destroy: ## Remove everything STACK made (pushed images stay), also after an interrupted run
	@scripts/destroy.sh $(STACK)

test: ## Run the whole test suite (unit + integration) on the real platform
	@scripts/test.sh

toolchain: ## Build the Pulumi CLI, language host and plugins from Go modules (cached)
	@scripts/toolchain.sh

platform: ## Start the Docker engine, the authenticated registry and the cluster
	@scripts/platform.sh
	@scripts/cluster.sh

platform-down: ## Stop what `make platform` started
	@scripts/cluster-down.sh
	@scripts/platform-down.sh

cluster: ## Start the single-node Kubernetes cluster (built from Go modules, cached)
	@scripts/cluster.sh

cluster-down: ## Stop the cluster
	@scripts/cluster-down.sh

venv: ## Create the Python virtualenv from requirements.txt
	@scripts/python-env.sh

bench: ## Benchmark the stack against raw docker, docker-compose and kubectl (ARGS=--quick)
	@scripts/bench.sh $(ARGS)
