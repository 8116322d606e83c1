#include "config/config.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>

#include "config/names.hpp"

namespace ppinject {

ConfigError::ConfigError(const std::string &file, unsigned line, const std::string &reason)
    : std::runtime_error(line ? file + ":" + std::to_string(line) + ": " + reason
                              : file + ": " + reason),
      file_(file),
      line_(line),
      reason_(reason) {}

std::string quote(std::string_view text) {
    return "\"" + std::string(text) + "\"";
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
