// GoogleTest entry point shared by every test binary: libbpf's messages are routed into
// the test log (debug lines too when PPINJECT_TEST_VERBOSE is set), so a verifier
// rejection shows up next to the failing assertion. As root, what a killed test process
// left (namespaces, config files) is removed first.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "loader/libbpf_log.hpp"
#include "support/netns.hpp"

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (geteuid() == 0) {
        pptest::remove_leftovers_of_killed_tests();
    }
    ppinject::set_libbpf_logger(
        [](std::string_view line) { std::cerr << "libbpf: " << line << '\n'; },
        std::getenv("PPINJECT_TEST_VERBOSE") != nullptr);
    return RUN_ALL_TESTS();
}
