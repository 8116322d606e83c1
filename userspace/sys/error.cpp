#include "sys/error.hpp"

#include <bpf/libbpf.h>

#include <cstdio>
#include <cstring>

namespace ppinject {

std::string error_text(std::string_view what, int err) {
    int neg = err < 0 ? err : -err;
    char reason[256];
    if (libbpf_strerror(neg, reason, sizeof reason) != 0) {
        std::snprintf(reason, sizeof reason, "%s", std::strerror(-neg));
    }
    std::string out(what);
    out += ": ";
    out += reason;
    return out;
}

}  // namespace ppinject
