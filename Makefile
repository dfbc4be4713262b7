# Thin wrapper around CMake/CTest. `make` builds into build/ (binaries in build/bin/),
# `make check` runs every test (unit, e2e, sanitizer build, short fuzz runs), `make demo`
# runs the main job on a built-in default, `make bench` runs the side-by-side benchmarks.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20

.PHONY: all deps build check check-unit check-e2e check-asan check-fuzz check-cross check-lint demo bench cross clean format lint

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Everything: the normal build's unit and end-to-end tests, the unit tests again under
# ASan+UBSan, each fuzz target for a short run, the agent's tests under qemu, and the linters.
check: build check-unit check-e2e check-asan check-fuzz check-cross check-lint

check-lint: lint

check-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

check-e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

check-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DES_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -L unit -j $(JOBS)

check-fuzz: deps
	@CC=clang-14 cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DES_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@bash scripts/run-fuzzers.sh $(FUZZ_BUILD)/bin $(FUZZ_SECONDS)

demo: build
	@bash scripts/demo.sh $(BUILD)/bin

bench: build
	@bash bench/run-all.sh $(BUILD)/bin

# The agent for linux/arm64 with Debian's cross compiler (build-arm64/bin/edgeagent).
cross: deps
	@cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=scripts/toolchain-arm64.cmake -DES_AGENT_ONLY=ON >/dev/null
	@cmake --build build-arm64 -j $(JOBS)

# The agent's unit tests, cross-built for arm64 and run under qemu-user.
check-cross: cross
	cd build-arm64 && ctest --output-on-failure -L agent -j $(JOBS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

lint: build
	@cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
	  --suppress=missingIncludeSystem --library=.cppcheck-jansson.cfg -I src/lib -I src/agent src/
	@git ls-files 'src/*.c' | xargs -P $(JOBS) -n 8 clang-tidy -p $(BUILD) --quiet \
	  --extra-arg=-Wno-unknown-warning-option --warnings-as-errors='*' 2>/dev/null

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) build-arm64
