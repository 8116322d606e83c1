# Thin front door; CMakeLists.txt is the real build.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: build deps test demo clean format

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

demo: deps
	$(MAKE) build
	tools/demo.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD)
