# Two commands set everything up on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the runtime and the test suite need (xrootd daemon; VM image build and boot;
# squid as a site's conditions proxy and postgresql as conditions metadata, started by tests).
DEB_RUNTIME := xrootd-server
DEB_TEST := $(DEB_RUNTIME) xrootd-client time slurm-wlm munge squid postgresql debootstrap qemu-system-x86 qemu-utils cloud-image-utils grub-pc-bin e2fsprogs fdisk dosfstools

.PHONY: install system-runtime system-test demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

system-runtime:
	@command -v xrootd >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_RUNTIME); }

system-test:
	@missing=""; for p in $(DEB_TEST); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

demo: install system-runtime
	$(VENV)/bin/hepstream demo

test: install system-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m pytest

# The daily tier: everything but the integration tests that boot VMs or start Slurm, squid,
# PostgreSQL, Dask or many readers (markers in pyproject.toml); `make test` runs them all.
FAST := not (slow or vm or slurm or squid or postgres or dask)
test-fast: install system-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "$(FAST)"

bench: install system-test
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build dist .pytest_cache .benchmarks
