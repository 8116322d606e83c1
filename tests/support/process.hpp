// Run a program the way a user would: argv, bytes on stdin, captured stdout/stderr and
// exit status. Bounded in time: a child still running after `timeout` is killed.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace pptest {

struct ProcessResult {
    int exit_code = -1;  // exit status, or 128 + signal number when killed by a signal
    std::string out;
    std::string err;
    bool timed_out = false;
};

ProcessResult run_process(const std::vector<std::string> &argv, const std::string &input = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Path of the built CLI (build/ppinject).
std::string ppinject_binary();

}  // namespace pptest
