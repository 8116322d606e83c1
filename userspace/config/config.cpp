#include "config/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "codec/common.hpp"
#include "config/names.hpp"

namespace ppinject {

namespace {

// TOML basic-string escapes for control characters (and for `"` and `\` when `quotes`), so
// that what an error echoes stays on one line and could be pasted back into the file.
std::string escape(std::string_view text, bool quotes) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        if (quotes && (c == '"' || c == '\\')) {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (u < 0x20 || u == 0x7f) {
            out += fmt::format("\\u{:04X}", u);
        } else {
            out += c;
        }
    }
    return out;
}

std::string one_line(const std::string &file, unsigned line, const std::string &reason) {
    std::string where = escape(file, false);
    return (line ? where + ":" + std::to_string(line) : where) + ": " + reason;
}

bool bare_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

}  // namespace

// The reason is made one line here whatever its pieces held: a message that is one line is
// what config.hpp promises and what a log or `check` prints.
ConfigError::ConfigError(const std::string &file, unsigned line, const std::string &reason)
    : std::runtime_error(one_line(file, line, escape(reason, false))),
      file_(file),
      line_(line),
      reason_(escape(reason, false)) {}

std::string quote(std::string_view text) {
    return "\"" + escape(text, true) + "\"";
}

std::string quote_key(std::string_view key) {
    return bare_key(key) ? "'" + std::string(key) + "'" : quote(key);
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    using namespace std::chrono;
    // Largest first; each at most once.
    constexpr std::array<std::pair<std::string_view, std::int64_t>, 4> kUnits = {{
        {"h", 3'600'000'000'000},
        {"m", 60'000'000'000},
        {"s", 1'000'000'000},
        {"ms", 1'000'000},
    }};
    std::int64_t total = 0;
    std::size_t i = 0, next_unit = 0;
    if (text.empty()) {
        return std::nullopt;
    }
    while (i < text.size()) {
        std::size_t start = i;
        std::int64_t n = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            n = n * 10 + (text[i] - '0');
            if (n > 1'000'000'000) {
                return std::nullopt;
            }
            i++;
        }
        if (i == start) {
            return std::nullopt;
        }
        std::size_t u = i;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) {
            i++;
        }
        std::string_view unit = text.substr(u, i - u);
        std::size_t k = next_unit;
        while (k < kUnits.size() && kUnits[k].first != unit) {
            k++;
        }
        if (k == kUnits.size()) {
            return std::nullopt;  // unknown unit, or out of order / repeated
        }
        std::int64_t part = 0;
        if (__builtin_mul_overflow(n, kUnits[k].second, &part) ||
            __builtin_add_overflow(total, part, &total)) {
            return std::nullopt;
        }
        next_unit = k + 1;
    }
    if (total <= 0) {
        return std::nullopt;
    }
    return nanoseconds(total);
}

std::string format_duration(std::chrono::nanoseconds d) {
    std::int64_t msec = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    if (msec <= 0) {
        return fmt::format("{}ns", d.count());
    }
    std::string out;
    for (auto [unit, size] : {std::pair{"h", 3'600'000LL}, std::pair{"m", 60'000LL},
                              std::pair{"s", 1'000LL}, std::pair{"ms", 1LL}}) {
        if (msec >= size) {
            out += fmt::format("{}{}", msec / size, unit);
            msec %= size;
        }
    }
    return out;
}

std::string to_string(Protocol p) {
    return std::string(name_of(kProtocolNames, p));
}
std::string to_string(HeaderMode h) {
    return std::string(name_of(kHeaderModeNames, h));
}
std::string to_string(UdpHeaderPolicy u) {
    return std::string(name_of(kUdpHeaderPolicyNames, u));
}
std::string to_string(OnError o) {
    return std::string(name_of(kOnErrorNames, o));
}
std::string to_string(AttachHook a) {
    return std::string(name_of(kAttachHookNames, a));
}
std::string to_string(TcpMode m) {
    return std::string(name_of(kTcpModeNames, m));
}
std::string to_string(RelayMode s) {
    return std::string(name_of(kRelayModeNames, s));
}
std::string to_string(HealthMode m) {
    return std::string(name_of(kHealthModeNames, m));
}

std::string prefix_string(const ListenSpec &l) {
    return l.addr.to_string() + "/" + std::to_string(l.prefix_len);
}

std::string to_string(const ListenSpec &l) {
    std::string a = l.addr.to_string();
    unsigned full = l.addr.is_v4() ? 32 : 128;
    if (l.prefix_len != full && !(l.prefix_len == 0 && l.addr.is_unspecified())) {
        a += "/" + std::to_string(l.prefix_len);
    }
    if (!l.addr.is_v4()) {
        a = "[" + a + "]";
    }
    return l.port_first == l.port_last ? fmt::format("{}:{}", a, l.port_first)
                                       : fmt::format("{}:{}-{}", a, l.port_first, l.port_last);
}

std::size_t max_header_len(const Service &s) {
    if (s.header == HeaderMode::v1) {
        return proxy::kV1MaxLen;
    }
    constexpr std::size_t kTlvHeader = 3;  // type, 16-bit length
    const TlvConfig &t = s.tlv;
    std::size_t n = proxy::kV2Inet6Len;
    if (t.unique_id) {
        n += kTlvHeader + 16;
    }
    if (t.crc32c) {
        n += kTlvHeader + 4;
    }
    if (t.authority_from_sni) {
        n += kTlvHeader + kMaxSni;
    } else if (!t.authority.empty()) {
        n += kTlvHeader + t.authority.size();
    }
    if (!t.netns.empty()) {
        n += kTlvHeader + t.netns.size();
    }
    for (const auto &[type, value] : t.custom) {
        n += kTlvHeader + value.size();
    }
    return n;
}

std::size_t service_key_count(const Config &cfg) {
    std::size_t n = 0;
    for (const auto &s : cfg.services) {
        for (const auto &l : s.listen) {
            n += l.port_count();
        }
    }
    return n;
}

}  // namespace ppinject
