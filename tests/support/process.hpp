// Run a program the way a user would: argv, bytes on stdin, captured stdout/stderr and
// exit status. Bounded in time: a child still running after `timeout` is killed.
#pragma once

#include <chrono>
#include <csignal>
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

// A program running in the background with stdout and stderr going to a log file. The
// destructor kills it (SIGKILL) and reaps it if it is still running; only this PID.
class Child {
  public:
    explicit Child(const std::vector<std::string> &argv);
    ~Child();
    Child(const Child &) = delete;
    Child &operator=(const Child &) = delete;

    int pid() const { return pid_; }
    // Everything it has printed so far.
    std::string log() const;
    // Waits until its output contains `text`; false on timeout or if it exited first.
    bool wait_for_output(const std::string &text,
                         std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
    // Sends `sig` and waits for the exit; returns the exit code (128 + signal when killed),
    // or -1 if it did not exit within `timeout` (it is then killed).
    int stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(20));
    bool running();

  private:
    int pid_ = -1;
    std::string log_path_;
    int status_ = -1;
};

// Path of the built CLI (build/ppinject).
std::string ppinject_binary();

}  // namespace pptest
