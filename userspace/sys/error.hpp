// The one wording of an error from a system call or libbpf: "doing what: why". Capture the
// error at once (`int err = -errno;` right after the failed call, before any text is
// built: an allocation may change errno; or libbpf's negative return), then render it here.
#pragma once

#include <string>
#include <string_view>

namespace ppinject {

// "what: reason" for error `err`, negative as libbpf returns it or positive as errno holds
// it. libbpf_strerror renders libbpf's own codes (LIBBPF_ERRNO__*) and the system's alike.
std::string error_text(std::string_view what, int err);

}  // namespace ppinject
