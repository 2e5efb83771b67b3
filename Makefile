# Entry points (run `make help`): scripts/ for the project's workflows, platform/ for the local
# platform (engine, registry, images, database, cluster), toolchain/ for the offline Pulumi build.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK ?= dev

.PHONY: help up destroy dev logs status gc test toolchain platform platform-down cluster cluster-down venv bench soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

up: ## Bring up STACK (default dev; FROM=dev for a personal copy of a stack) and print its URL
	@scripts/up.sh $(STACK) $(FROM)

dev: ## Follow the sources: a save syncs into (live update) or rebuilds and rolls its service of STACK
	@scripts/devtools.sh dev $(STACK)

logs: ## Follow the logs of STACK's services (SERVICE=name for one)
	@scripts/devtools.sh logs $(STACK) $(SERVICE)

status: ## STACK's services: running image digest, health or readiness, URL; disk used by images
	@scripts/devtools.sh status $(STACK)

gc: ## Remove STACK's old images from the engine and the registry (keeps keepReleases + referenced)
	@scripts/devtools.sh gc $(STACK)

destroy: ## Remove everything STACK made (pushed images stay), also after an interrupted run; registry GC
	@scripts/destroy.sh $(STACK)

test: ## Run the whole test suite (unit + integration) on the real platform
	@scripts/test.sh

toolchain: ## Build the Pulumi CLI, language host and plugins from Go modules (cached)
	@toolchain/build.sh

platform: ## Start the Docker engine, the authenticated registry and the cluster
	@platform/up.sh
	@platform/cluster/up.sh

platform-down: ## Stop what `make platform` started
	@platform/cluster/down.sh
	@platform/down.sh

cluster: ## Start the single-node Kubernetes cluster (built from Go modules, cached)
	@platform/cluster/up.sh

cluster-down: ## Stop the cluster
	@platform/cluster/down.sh

venv: ## Create the Python virtualenv from requirements.txt
	@scripts/python-env.sh

bench: ## Benchmark the stack against raw docker, docker-compose and kubectl (ARGS=--quick)
	@scripts/bench.sh $(ARGS)

soak: ## Soak each target 5 minutes: updates every 30 s, a replica killed every minute (ARGS=--seconds N)
	@scripts/bench.sh soak $(ARGS)
