# phoenix: set-up, demo and tests on a fresh Debian machine. Idempotent: re-running is quick.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Host packages: the lab (lxd, iptables, btrfs-progs, debootstrap), bakes (packer), traffic (haproxy),
# schedules (cron), the drift benchmark's reference (aide), venv for Debian's Python, and a real
# headless browser (chromium, chromium-driver) that checks the HTML report.
DEBS := lxd iptables btrfs-progs debootstrap packer haproxy cron aide python3-venv chromium chromium-driver

.PHONY: setup debs services venv demo check fmt test lint unit integration bench clean

setup: debs services venv

# The virtualenv alone: enough for `make check` (no root, no lab).
venv: $(VENV)/.installed

debs:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

services:
	@pgrep -x cron >/dev/null || $(SUDO) cron

# A fresh Debian has no venv module for its Python: the one package `make check` needs.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q python3-venv \
	  && $(PY) -m venv $(VENV); }
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

demo: setup
	$(BIN)/phoenix lab up
	$(BIN)/phoenix image bake web
	$(BIN)/phoenix deploy web
	$(BIN)/phoenix status web
	@echo "== rebuilding fleet web under load (only to 127.0.0.1:8080) =="
	@rm -f .phoenix-demo-stop; \
	  $(BIN)/python -m bench.load 127.0.0.1:8080 300 .phoenix-demo-stop & load=$$!; \
	  $(BIN)/phoenix rebuild web --yes; rc=$$?; touch .phoenix-demo-stop; wait $$load; \
	  rm -f .phoenix-demo-stop; exit $$rc
	$(BIN)/phoenix status web
	@echo "== a snowflake: a hand edit on one server, then the drift report =="
	$(BIN)/python bench/snowflake.py web
	@$(BIN)/phoenix drift web || echo "(exit $$?: drift found, as expected; the rebuild below replaces the snowflake)"
	$(BIN)/phoenix rebuild web --yes
	$(BIN)/phoenix drift web

# The fast lane: needs no root and no lab. Lint, types, import contracts, unit tests.
check: lint unit

lint: $(VENV)/.installed
	$(BIN)/ruff check phoenix tests bench
	$(BIN)/ruff format --check phoenix tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(VENV)/.installed
	$(BIN)/ruff check --fix -q phoenix tests bench
	$(BIN)/ruff format phoenix tests bench

unit: $(VENV)/.installed
	$(BIN)/pytest -q tests/unit

# The lab lane: the real LXD daemon, Packer, Terraform, sshd, HAProxy.
integration: setup
	$(BIN)/pytest -q --durations=15 tests/integration

# The whole suite: the fast lane first, then the lab.
test: check integration

# By hand: every benchmark, each printing its ratio against a reference measured in the same run.
bench: setup
	$(BIN)/phoenix lab up
	$(BIN)/python bench/bake.py
	$(BIN)/python bench/rollout.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
