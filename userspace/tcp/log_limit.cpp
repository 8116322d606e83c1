#include "tcp/log_limit.hpp"

#include <fmt/format.h>

namespace ppinject::tcp {

void LogLimiter::write(const std::string &line, Seen &seen, Clock::time_point now) {
    if (seen.repeats == 0) {
        out_(line);
    } else {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - seen.last);
        out_(fmt::format("{} (and {} more like it in the last {:.1f}s)", line, seen.repeats,
                         static_cast<double>(ms.count()) / 1000));
    }
    seen.last = now;
    seen.repeats = 0;
}

void LogLimiter::operator()(const std::string &line) {
    Clock::time_point now = now_();
    auto it = lines_.find(line);
    if (it == lines_.end()) {
        if (lines_.size() >= kMaxLines) {
            flush();
        }
        if (lines_.size() >= kMaxLines) {
            out_(line);  // more distinct lines within a second than can be tracked
            return;
        }
        write(line, lines_[line], now);
        return;
    }
    if (now - it->second.last >= kEvery) {
        write(line, it->second, now);
    } else {
        it->second.repeats++;
    }
}

void LogLimiter::flush() {
    Clock::time_point now = now_();
    for (auto it = lines_.begin(); it != lines_.end();) {
        if (now - it->second.last < kEvery) {
            ++it;
        } else if (it->second.repeats > 0) {
            write(it->first, it->second, now);
            ++it;
        } else {
            it = lines_.erase(it);  // quiet for a second: forgotten
        }
    }
}

}  // namespace ppinject::tcp
