// A TCP service as the acceptor's threads share it: its configuration, fixed for the life
// of this object (a reload makes a new one), and the state that changes while it serves.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "config/config.hpp"

namespace ppinject::tcp {

struct ServiceRt {
    explicit ServiceRt(const Service &svc);

    Service cfg;
    std::size_t max_header = 0;                          // max_header_len(cfg)
    mutable std::atomic<std::uint64_t> next_backend{0};  // round-robin position
    // Whether each backend is in rotation: health checks take it out and put it back;
    // without health checks every backend always is.
    std::unique_ptr<std::atomic<bool>[]> up;

    bool is_up(std::size_t backend) const { return up[backend].load(std::memory_order_relaxed); }
};

}  // namespace ppinject::tcp
