// LogLimiter: a line repeated within a second is counted, not written; the count goes out
// with the next one after the second, or from flush(); distinct lines are limited apart.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tcp/log_limit.hpp"

namespace {

using ppinject::tcp::LogLimiter;
using namespace std::chrono_literals;

struct Fixture {
    std::vector<std::string> out;
    LogLimiter::Clock::time_point t{};
    LogLimiter log{[this](const std::string &l) { out.push_back(l); }, [this] { return t; }};
};

TEST(LogLimiter, RepeatsWithinASecondAreCountedAndSaidWithTheNext) {
    Fixture f;
    f.log("tcp: pipe: Too many open files");
    for (int i = 0; i < 500; i++) {
        f.t += 1ms;
        f.log("tcp: pipe: Too many open files");
    }
    f.log("tcp: accept: Too many open files");  // another line is not held back by the first
    ASSERT_EQ(f.out, (std::vector<std::string>{"tcp: pipe: Too many open files",
                                               "tcp: accept: Too many open files"}));
    f.t += 600ms;  // 1.1 s after the first
    f.log("tcp: pipe: Too many open files");
    EXPECT_EQ(f.out.back(),
              "tcp: pipe: Too many open files (and 500 more like it in the last 1.1s)");
    f.t += 1s;
    f.log("tcp: pipe: Too many open files");  // nothing held back since: plain again
    EXPECT_EQ(f.out.back(), "tcp: pipe: Too many open files");
    EXPECT_EQ(f.out.size(), 4u);
}

TEST(LogLimiter, FlushSaysTheCountWhenNoRepeatFollows) {
    Fixture f;
    f.log("x");
    f.log("x");
    f.log("x");
    f.log.flush();  // within the second: still held
    EXPECT_EQ(f.out.size(), 1u);
    f.t += 1500ms;
    f.log.flush();
    ASSERT_EQ(f.out.size(), 2u);
    EXPECT_EQ(f.out.back(), "x (and 2 more like it in the last 1.5s)");
    f.t += 2s;
    f.log.flush();  // nothing more to say, and the line is forgotten
    f.log("x");
    EXPECT_EQ(f.out.back(), "x");
    EXPECT_EQ(f.out.size(), 3u);
}

}  // namespace
