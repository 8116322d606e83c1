// Log lines that can repeat once per connection (accept failing, descriptors running out)
// written at most once a second each: a repeat within the second is counted instead, and
// the count goes out with the next one or, when none follows, from flush().
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>

#include "loader/datapath.hpp"

namespace ppinject::tcp {

class LogLimiter {
  public:
    using Clock = std::chrono::steady_clock;
    explicit LogLimiter(LogFn out, std::function<Clock::time_point()> now = Clock::now)
        : out_(std::move(out)), now_(std::move(now)) {}

    void operator()(const std::string &line);
    // Writes the count of each line repeated more than a second ago; call it now and then.
    void flush();

  private:
    static constexpr std::chrono::seconds kEvery{1};
    static constexpr std::size_t kMaxLines = 1024;  // distinct lines tracked at once
    struct Seen {
        Clock::time_point last;   // when it was last written
        std::size_t repeats = 0;  // held back since
    };
    void write(const std::string &line, Seen &seen, Clock::time_point now);

    LogFn out_;
    std::function<Clock::time_point()> now_;
    std::unordered_map<std::string, Seen> lines_;
};

}  // namespace ppinject::tcp
