# Thin front door; CMakeLists.txt is the real build.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: build deps test test-asan fuzz vmtest demo bench deb clean format

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

deps:
	tools/install-deps.sh

# Every test: codec units, BPF packet tests, namespace tests. Needs root.
test: deps
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure

# Every test again in an ASan + UBSan build of its own, daemon included (any report fails
# the test). ASAN_TARGETS (default all) narrows the build, and with it the tests: a test
# binary left unbuilt is left out (CTest's <name>_NOT_BUILT placeholder); ASAN_TESTS and
# ASAN_EXCLUDE (ctest regexes) narrow the run. .ci/run shows a subset. TcpInlineProg is
# registered per binary, not per case: with a narrowed ASAN_TARGETS, name
# tcp_inline_prog_test in it or exclude ^TcpInlineProg.
# Unoptimised with line tables only (-O0 -g1): a third of the build time of -O2 -g under
# ASan (toml11's templates dominate), the reports keep FILE:LINE, and the tests wait on
# the network and the kernel, not on the daemon's CPU.
ASAN_BUILD ?= build-asan
ASAN_CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O0 -g1" \
  "-DCMAKE_C_FLAGS_DEBUG=-O0 -g1"
ASAN_TARGETS ?= all
ASAN_TESTS ?= .
ASAN_EXCLUDE ?=
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_FLAGS) $(ASAN_CMAKE_FLAGS) -DPPINJECT_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target $(ASAN_TARGETS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -R '$(ASAN_TESTS)' \
	  -E '_NOT_BUILT$$$(if $(ASAN_EXCLUDE),|$(ASAN_EXCLUDE))'

# The libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan) in a build of their own, each
# replaying its seeds and regressions and then fuzzing for FUZZ_SECONDS, FUZZ_JOBS targets
# at a time (FUZZ_TARGETS picks some); any finding fails.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= $(JOBS)
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) $(CMAKE_FLAGS) -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DPPINJECT_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

# The kernel-level tests again, in a VM on Debian's 6.1 LTS kernel, then in one on its 6.12
# (one result line each; any failure fails). KERNEL=6.12 (a Debian series), KERNEL=x.deb or
# KERNEL=vmlinuz picks one. tools/vmtest.sh --help has the options; PPINJECT_VMTEST_REGEX=...
# narrows the tests.
vmtest: deps
	$(MAKE) build
	VMTEST_BUILD=$(BUILD) tools/vmtest.sh $(KERNEL)

demo: deps
	$(MAKE) build
	tools/demo.sh $(BUILD)

# Benchmarks beside a direct connection, HAProxy and nginx (tools/bench/README.md). Needs
# root; under 5 minutes; tables on stdout, $(BUILD)/bench/results.{json,md,png}.
bench: deps
	$(MAKE) build
	tools/bench/run.py $(BUILD) $(BENCH_ARGS)

# The Debian package BUILD/ppinject_<version>_amd64.deb (debhelper, checked by lintian),
# from the build directory as it is: tools/debian/ is the packaging, tools/deb.sh the steps.
deb: deps
	$(MAKE) build
	tools/deb.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD)
