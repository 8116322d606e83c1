// libbpf's own log lines, routed to a sink the caller chooses (error text is
// sys/error.hpp's).
#pragma once

#include <functional>
#include <string_view>

namespace ppinject {

// Where libbpf's warnings go; the default prints them to stderr prefixed "libbpf: ".
// Debug-level chatter is dropped unless `verbose`.
void set_libbpf_logger(std::function<void(std::string_view line)> sink, bool verbose = false);

// Silences libbpf's warnings while in scope: for probes whose failure is an answer
// ("no clsact qdisc here"), not an error.
class QuietLibbpf {
  public:
    QuietLibbpf();
    ~QuietLibbpf();
    QuietLibbpf(const QuietLibbpf &) = delete;
    QuietLibbpf &operator=(const QuietLibbpf &) = delete;
};

}  // namespace ppinject
