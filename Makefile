# SandboxServer — two commands do everything on a fresh Debian 12 machine (as root):
#   make run    install missing system packages, build, serve on 127.0.0.1:2358 (SQLite under ./data)
#   make test   install missing system packages, then run every test
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

# Build and runtime dependencies (Debian package names).
SYSTEM_PACKAGES := build-essential pkg-config libsqlite3-dev libseccomp-dev libcurl4-openssl-dev \
	python3 python3-venv gcc g++ default-jdk-headless nodejs bash coreutils
# Extra tools the test suite and benchmarks use.
TEST_PACKAGES := bubblewrap nginx-light wrk qemu-system-x86 linux-image-amd64 busybox-static python3-yaml \
	systemd iproute2 curl strace
# Optional languages (enabled when their toolchain is installed); installed by `make run` and
# `make test` because the Jobe API's clients expect them (octave is supported when installed).
EXTRA_LANGUAGES := php-cli fp-compiler

HOST ?= 127.0.0.1
PORT ?= 2358
DATA_DIR ?= ./data
CONFIG ?= release
BIN := .build/$(CONFIG)/sandbox-server

.PHONY: run test build deps test-deps language-deps bench clean check-swift

run: deps language-deps build
	mkdir -p $(DATA_DIR)
	$(BIN) serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: deps test-deps language-deps
	bash scripts/test-all.sh

build: check-swift
	swift build -c $(CONFIG) --product sandbox-server

bench: deps test-deps build
	$(BIN) bench all

check-swift:
	@command -v swift >/dev/null || { echo "error: Swift 6 toolchain not found (expected /opt/swift/usr/bin or on PATH); install it from swift.org" >&2; exit 1; }

deps:
	@bash scripts/install-packages.sh $(SYSTEM_PACKAGES)

test-deps:
	@bash scripts/install-packages.sh $(TEST_PACKAGES)

language-deps:
	@bash scripts/install-packages.sh $(EXTRA_LANGUAGES)

clean:
	rm -rf .build
