# SPDX-License-Identifier: MIT
# The two commands of the quick start, on a fresh Debian bookworm as root:
#   make demo    install what is missing, build, run the sample job
#   make check   install what is missing, build, run every test
# Also: make bench, make bench-diff, make bench-rct, make fuzz
# [FUZZ_SECONDS=60], make asan-check.

BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60
CTEST_ARGS ?=

# Debian packages: to build, and the independent tools the tests use.
BUILD_PKGS = cmake gcc libc6-dev make libcmocka-dev
TEST_PKGS = qemu-utils 7zip libvhdi-utils python3-libvhdi python3 perl
FUZZ_PKGS = clang libclang-rt-14-dev
BENCH_PKGS = qemu-utils bc time

.PHONY: all build deps test-deps check demo bench bench-diff bench-rct fuzz \
        asan-check clean

all: build

# Installs only what is missing, so repeated runs stay quiet and offline.
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing Debian packages:$$missing (run as root or install them)"; \
	    exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_PKGS))

test-deps: deps
	$(call apt_install,$(TEST_PKGS))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

check: test-deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: test-deps build
	TIDEMARK=$(BUILD)/cmd/tidemark/tidemark bash scripts/demo.sh

bench: test-deps build
	$(call apt_install,$(BENCH_PKGS))
	TIDEMARK=$(BUILD)/cmd/tidemark/tidemark bash bench/convert.sh

# Writing into a differencing child and merging it, against the parent
# alone (docs/benchmarks.md).  BENCH_DIR=/dev/shm for tmpfs, BENCH_QUICK=1
# for a smoke run.
bench-diff: build
	$(call apt_install,$(BENCH_PKGS))
	DIFFBENCH=$(BUILD)/bench/diffbench bash bench/diff.sh

# What change tracking costs per write (on, off, no vdisk, raw pwrite),
# the query over 1 M extents of a 1 TiB disk and the memory per TiB
# (docs/benchmarks.md).  BENCH_DIR=/dev/shm for tmpfs (default /var/tmp),
# BENCH_QUICK=1 for a smoke run.
bench-rct: build
	$(call apt_install,$(BENCH_PKGS))
	RCTBENCH=$(BUILD)/bench/rctbench bash bench/rct.sh

# The suite again under AddressSanitizer and UndefinedBehaviorSanitizer.
asan-check: test-deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTM_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 TM_CRASH_STRIDE=5 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Each libFuzzer target for FUZZ_SECONDS, starting from tests/corpus/<name>.
fuzz: deps
	$(call apt_install,$(FUZZ_PKGS))
	CC=clang cmake -S . -B build-fuzz -DTM_FUZZ=ON -DTM_WERROR=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS)
	bash scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
