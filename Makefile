# Thin front door; CMakeLists.txt is the real build.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: build deps test vmtest demo bench deb clean format

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

# The kernel-level tests again, inside a VM on Debian's 6.1 LTS kernel (or KERNEL=vmlinuz|.deb).
# tools/vmtest.sh --help has the options; PPINJECT_VMTEST_REGEX=... narrows the tests.
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
