# sealstore: the two commands of the README are `make lab` and `make test`.
#
# Every target runs from the repository root with the project's own virtualenv first on PATH,
# so molecule, ansible-playbook and pytest are the pinned versions in requirements/dev.txt.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
VBIN := $(VENV)/bin
STAMP := $(VENV)/.sealstore-requirements
REQ_HASH := $(shell cat requirements/dev.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
KMS_MODE ?= vault
KMS_TOPOLOGY ?= single
PYTEST_ARGS ?=

export PATH := $(VBIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv lab lab-down lint unit contract integration fuzz molecule infra-lab bench test docker image

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: ## .venv with the pinned requirements and sealstore installed editable (reused while up to date)
	@if [[ -x "$(VBIN)/python" && "$$(cat $(STAMP) 2>/dev/null)" == "$(REQ_HASH)" ]]; then \
		echo "venv: up to date ($(REQ_HASH))"; \
	else \
		scripts/venv.sh "$(PYTHON)" "$(VENV)" && echo "$(REQ_HASH)" > "$(STAMP)"; \
	fi

docker: ## make sure a Docker engine answers (installs docker.io / starts dockerd as root)
	@scripts/docker-up.sh

image: docker ## build or reuse the lab base image sealstore/lab-base:bookworm
	@scripts/lab-image.sh

lab: ## the whole lab: venv, docker, image, hosts, site.yml (KMS_MODE=vault|master_key, KMS_TOPOLOGY=single|cluster), verify.yml, summary
	@scripts/lab-run.sh "$(KMS_MODE)" "$(KMS_TOPOLOGY)"

lab-down: ## remove the lab containers, network and the lab's controller secrets
	@scripts/lab.sh down

lint: venv ## ruff (check + format), yamllint, ansible-lint --profile production
	@echo "lint: ruff check" && ruff check .
	@echo "lint: ruff format --check" && ruff format --check .
	@echo "lint: yamllint" && yamllint --strict .
	@echo "lint: ansible-lint (production profile)" && ansible-lint --profile production

unit: venv ## unit tests
	pytest tests/unit $(PYTEST_ARGS)

contract: venv ## storage contract suite, run against every registered backend (tests/contract)
	pytest tests/contract $(PYTEST_ARGS)

fuzz: venv ## the fuzz suite with the `fuzz` Hypothesis profile (100,000+ cases; prints the count)
	SEALSTORE_FUZZ_PROFILE=fuzz pytest -p no:cacheprovider tests/fuzz $(PYTEST_ARGS)

integration: venv ## integration tests (real OpenBao + real server + real S3 clients)
	pytest tests/integration $(PYTEST_ARGS)

molecule: venv image ## the molecule scenarios (default, master-key, namespace) through their pytest wrapper
	pytest tests/infra/test_molecule_scenarios.py $(PYTEST_ARGS)

infra-lab: venv ## the testinfra suites against the running lab (after `make lab`)
	SEALSTORE_INFRA_INVENTORY=$(CURDIR)/inventories/lab pytest -p no:cacheprovider -m "infra and not faults" tests/infra $(PYTEST_ARGS)

bench: venv ## benchmarks (bench/run.py)
	python bench/run.py

test: venv lint image ## lint, then unit + contract + fuzz (ci profile) + integration + molecule in ONE pytest run (one summary line)
	SEALSTORE_FUZZ_PROFILE=ci pytest tests/unit tests/contract tests/fuzz tests/integration tests/infra/test_molecule_scenarios.py $(PYTEST_ARGS)
