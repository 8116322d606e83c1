#include "loader/libbpf_log.hpp"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ppinject {
namespace {

std::function<void(std::string_view)> g_sink;
bool g_verbose = false;
thread_local int g_quiet = 0;

int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args) {
    if ((level == LIBBPF_DEBUG && !g_verbose) || (level == LIBBPF_WARN && g_quiet > 0)) {
        return 0;
    }
    char line[1024];
    int n = std::vsnprintf(line, sizeof line, fmt, args);
    if (n < 0) {
        return n;
    }
    std::string_view text(line,
                          std::min<std::size_t>(static_cast<std::size_t>(n), sizeof line - 1));
    while (!text.empty() && text.back() == '\n') {
        text.remove_suffix(1);
    }
    if (g_sink) {
        g_sink(text);
    } else {
        std::fprintf(stderr, "libbpf: %.*s\n", static_cast<int>(text.size()), text.data());
    }
    return n;
}

}  // namespace

QuietLibbpf::QuietLibbpf() {
    g_quiet++;
    libbpf_set_print(libbpf_print);
}
QuietLibbpf::~QuietLibbpf() {
    g_quiet--;
}

void set_libbpf_logger(std::function<void(std::string_view)> sink, bool verbose) {
    g_sink = std::move(sink);
    g_verbose = verbose;
    libbpf_set_print(libbpf_print);
}

}  // namespace ppinject
