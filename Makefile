# Thin front door; CMakeLists.txt is the real build.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: build deps test vmtest demo bench clean format

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

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD)
