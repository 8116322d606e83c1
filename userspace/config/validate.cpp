#include "config/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <tuple>
#include <variant>
#include <vector>

#include "codec/common.hpp"
#include "config/names.hpp"
#include "config/toml_reader.hpp"
#include "sys/kernel.hpp"

namespace ppinject {
namespace {

// A custom TLV value; the whole PROXY v2 header must stay far below its 16-bit length.
constexpr std::size_t kMaxCustomTlv = 1024;

// toml11 3.7 finds a value's line by counting newlines from the start of the file on every
// location() call, which made validation quadratic in the file's size (20,000 unknown keys:
// 8 s). While a LineIndex lives, line_of() looks the value's offset up in a newline index
// of its source instead. The offset comes from toml11's region (detail namespace, stable in
// Debian's 3.7.1); a value without one (made by code, not read) falls back to location().
class LineIndex {
  public:
    explicit LineIndex(const toml_value &root) {
        if (const auto *r = region(root)) {
            const std::vector<char> &text = *r->source();
            begin_ = text.data();
            for (std::size_t i = 0; i < text.size(); i++) {
                if (text[i] == '\n') {
                    newlines_.push_back(i);
                }
            }
            active_ = this;
        }
    }
    ~LineIndex() {
        if (active_ == this) {
            active_ = nullptr;
        }
    }
    LineIndex(const LineIndex &) = delete;
    LineIndex &operator=(const LineIndex &) = delete;

    static unsigned line_of(const toml_value &v) {
        const auto *r = region(v);
        if (!active_ || !r || r->source()->data() != active_->begin_) {
            return static_cast<unsigned>(v.location().line());
        }
        auto offset = static_cast<std::size_t>(&*r->first() - active_->begin_);
        const auto &nl = active_->newlines_;
        return static_cast<unsigned>(1 +
                                     (std::lower_bound(nl.begin(), nl.end(), offset) - nl.begin()));
    }

  private:
    static const toml::detail::region *region(const toml_value &v) {
        return dynamic_cast<const toml::detail::region *>(toml::detail::get_region(v));
    }

    static thread_local const LineIndex *active_;
    const char *begin_ = nullptr;
    std::vector<std::size_t> newlines_;
};

thread_local const LineIndex *LineIndex::active_ = nullptr;

unsigned line_of(const toml_value &v) {
    return LineIndex::line_of(v);
}

// Throws ConfigError at `v`'s line.
[[noreturn]] void fail(const std::string &file, const toml_value &v, const std::string &reason) {
    throw ConfigError(file, line_of(v), reason);
}

// Edit distance, for "did you mean" on unknown keys.
std::size_t distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); j++) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); i++) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); j++) {
            std::size_t up = row[j];
            bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// Reading one TOML table whose keys are all known in advance. Keys outside `allowed` are
// refused before anything else is looked at, so a typo ("interface") is reported as the
// typo, not as the missing key it was meant to be.
class Table {
  public:
    Table(const std::string &file, const toml_value &v, std::string what,
          std::vector<std::string_view> allowed)
        : file_(file),
          v_(v),
          what_(std::move(what)),
          where_("in " + what_),
          allowed_(std::move(allowed)) {
        if (!v.is_table()) {
            fail(file_, v, what_ + " must be a table");
        }
    }

    // Refuses the first (by line) key that is not allowed, suggesting the nearest one.
    void no_unknown_keys() const {
        const toml_value *bad = nullptr;
        std::string bad_key;
        for (const auto &[key, value] : v_.as_table()) {
            if (std::find(allowed_.begin(), allowed_.end(), key) != allowed_.end()) {
                continue;
            }
            if (!bad || line_of(value) < line_of(*bad) ||
                (line_of(value) == line_of(*bad) && key < bad_key)) {
                bad = &value;
                bad_key = key;
            }
        }
        if (!bad) {
            return;
        }
        std::string reason = "unknown key " + quote_key(bad_key) + " " + where_;
        std::string_view best;
        std::size_t best_d = std::string::npos;
        for (auto k : allowed_) {
            std::size_t d = distance(bad_key, k);
            if (d < best_d) {
                best_d = d;
                best = k;
            }
        }
        // A prefix of an allowed key ("unique" for "unique_id") is a near miss too.
        for (auto k : allowed_) {
            if (bad_key.size() >= 3 && k.substr(0, bad_key.size()) == bad_key) {
                best = k;
                best_d = 0;
                break;
            }
        }
        if (!best.empty() && best_d <= std::max<std::size_t>(2, bad_key.size() / 3)) {
            reason += " (did you mean '" + std::string(best) + "'?)";
        }
        fail(file_, *bad, reason);
    }

    const toml_value *get(std::string_view key) const {
        const auto &t = v_.as_table();
        auto it = t.find(std::string(key));
        return it == t.end() ? nullptr : &it->second;
    }

    std::optional<std::string> string(std::string_view key) const {
        const toml_value *v = get(key);
        if (!v) {
            return std::nullopt;
        }
        if (!v->is_string()) {
            fail(file_, *v, key_in(key) + " must be a string");
        }
        return v->as_string().str;
    }

    std::optional<bool> boolean(std::string_view key) const {
        const toml_value *v = get(key);
        if (!v) {
            return std::nullopt;
        }
        if (!v->is_boolean()) {
            fail(file_, *v, key_in(key) + " must be true or false");
        }
        return v->as_boolean();
    }

    // A string or an array of strings, each with its value (for its line). An empty array
    // is refused here: the keys read this way are all "at least one".
    std::vector<std::pair<std::string, const toml_value *>> strings(std::string_view key) const {
        std::vector<std::pair<std::string, const toml_value *>> out;
        const toml_value *v = get(key);
        if (!v) {
            return out;
        }
        if (v->is_string()) {
            out.emplace_back(v->as_string().str, v);
            return out;
        }
        if (!v->is_array()) {
            fail(file_, *v, key_in(key) + " must be a string or an array of strings");
        }
        if (v->as_array().empty()) {
            fail(file_, *v, key_in(key) + " must not be empty");
        }
        for (const auto &e : v->as_array()) {
            if (!e.is_string()) {
                fail(file_, e, key_in(key) + " must hold strings only");
            }
            out.emplace_back(e.as_string().str, &e);
        }
        return out;
    }

    // One of the names in `names` (config/names.hpp), or nullopt when absent.
    template <typename Entry, std::size_t N>
    std::optional<decltype(Entry::value)> choice(std::string_view key,
                                                 const std::array<Entry, N> &names) const {
        auto s = string(key);
        if (!s) {
            return std::nullopt;
        }
        if (auto value = value_named(names, *s)) {
            return value;
        }
        std::string allowed;
        for (const auto &e : names) {
            allowed += (allowed.empty() ? "" : " | ") + quote(e.name);
        }
        fail(file_, *get(key), key_in(key) + " is " + quote(*s) + "; allowed: " + allowed);
    }

    std::optional<std::chrono::nanoseconds> duration(std::string_view key) const {
        const toml_value *v = get(key);
        if (!v) {
            return std::nullopt;
        }
        constexpr const char *kForms =
            "a positive duration such as \"500ms\", \"30s\", \"1m30s\", \"1h\" (units h, m, "
            "s, ms, largest first)";
        if (!v->is_string()) {
            fail(file_, *v, key_in(key) + " must be a string: " + kForms);
        }
        auto d = parse_duration(v->as_string().str);
        if (!d) {
            fail(file_, *v,
                 key_in(key) + " is " + quote(v->as_string().str) + "; expected " + kForms);
        }
        return d;
    }

    void rename(std::string what) {
        what_ = std::move(what);
        where_ = "in " + what_;
    }
    // How unknown keys are placed: "in service 'dns'", "at the top level".
    void set_where(std::string where) { where_ = std::move(where); }
    const std::string &what() const { return what_; }
    unsigned line() const { return line_of(v_); }
    const toml_value &value() const { return v_; }

  private:
    std::string key_in(std::string_view key) const {
        return "'" + std::string(key) + "' in " + what_;
    }

    const std::string &file_;
    const toml_value &v_;
    std::string what_;
    std::string where_;
    std::vector<std::string_view> allowed_;
};

// 1..max_len characters of A-Z a-z 0-9 _ -: service names, congestion control names.
bool valid_name(const std::string &s, std::size_t max_len = PP_NAME_LEN - 1) {
    if (s.empty() || s.size() > max_len) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

// What the kernel's dev_valid_name() accepts: 1..15 bytes, not "." or "..", no '/', ':'
// or whitespace (control characters refused too: they are never meant).
bool valid_ifname(const std::string &s) {
    if (s.empty() || s.size() > 15 || s == "." || s == "..") {
        return false;
    }
    return std::none_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return c == '/' || c == ':' || std::isspace(u) || u < 0x20 || u == 0x7f;
    });
}

// Printable ASCII without spaces: host names, namespace names.
bool printable_token(const std::string &s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// "ADDR[/PREFIX]:PORT[-PORT]" or "[V6[/PREFIX]]:PORT[-PORT]"; an error text on failure.
std::variant<ListenSpec, std::string> parse_listen(const std::string &text) {
    std::string_view t = text, host, ports;
    if (!t.empty() && t.front() == '[') {
        auto close = t.find(']');
        if (close == std::string_view::npos || close + 1 >= t.size() || t[close + 1] != ':') {
            return std::string("expected \"[IPV6]:PORT\" or \"[IPV6/PREFIX]:PORT\"");
        }
        host = t.substr(1, close - 1);
        ports = t.substr(close + 2);
        if (host.substr(0, host.find('/')).find(':') == std::string_view::npos) {
            return std::string("brackets are for IPv6 addresses; write IPv4 as \"ADDR:PORT\"");
        }
    } else {
        auto colon = t.rfind(':');
        if (colon == std::string_view::npos) {
            return std::string("missing \":PORT\"");
        }
        host = t.substr(0, colon);
        ports = t.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return "an IPv6 address needs brackets: " + quote("[" + std::string(host) + "]:PORT");
        }
    }
    ListenSpec l;
    l.text = text;
    std::string_view addr = host;
    auto slash = host.find('/');
    if (slash != std::string_view::npos) {
        addr = host.substr(0, slash);
    }
    auto ip = IpAddress::parse(addr);
    if (!ip) {
        return quote(addr) + " is not an IPv4 or IPv6 address";
    }
    if (ip->is_v4() && addr.find(':') != std::string_view::npos) {
        return std::string("write IPv4 addresses as dotted quads, not IPv4-mapped IPv6");
    }
    l.addr = *ip;
    unsigned full = ip->is_v4() ? 32 : 128;
    l.prefix_len = full;
    if (slash != std::string_view::npos) {
        std::string_view p = host.substr(slash + 1);
        auto n = parse_port(p);  // a small decimal without sign or leading zeros
        if (!n || *n > full) {
            return "prefix length " + quote(p) + " must be 0.." + std::to_string(full);
        }
        l.prefix_len = *n;
    } else if (ip->is_unspecified()) {
        l.prefix_len = 0;  // 0.0.0.0 and [::] are wildcards
    }
    // Host bits past the prefix must be zero: "192.0.2.1/24" is almost always a typo.
    const auto &m = ip->mapped();
    unsigned base = ip->is_v4() ? 96 : 0;
    for (unsigned bit = base + l.prefix_len; bit < 128; bit++) {
        if (m[bit / 8] & (0x80u >> (bit % 8))) {
            return quote(host) + " has host bits set past the /" + std::to_string(l.prefix_len) +
                   " prefix";
        }
    }
    auto dash = ports.find('-');
    auto first = parse_port(ports.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : parse_port(ports.substr(dash + 1));
    if (!first || !last) {
        return "port " + quote(ports) + " must be N or N-M with N, M in 1..65535";
    }
    if (*first == 0 || *last < *first) {
        return "port range " + quote(ports) + " must be 1..65535 with N <= M";
    }
    l.port_first = *first;
    l.port_last = *last;
    return l;
}

// Masked address bytes of a listen spec, for comparing specs.
std::array<std::uint8_t, 16> masked(const ListenSpec &l) {
    auto m = l.addr.mapped();
    unsigned base = l.addr.is_v4() ? 96 : 0;
    for (unsigned bit = base + l.prefix_len; bit < 128; bit++) {
        m[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    }
    return m;
}

std::chrono::milliseconds ms(std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

// "0xE0".."0xEF" (either case of x and of the hex digits).
std::optional<std::uint8_t> custom_tlv_type(const std::string &key) {
    if (key.size() != 4 || key[0] != '0' || (key[1] != 'x' && key[1] != 'X') ||
        !std::isxdigit(static_cast<unsigned char>(key[2])) ||
        !std::isxdigit(static_cast<unsigned char>(key[3]))) {
        return std::nullopt;
    }
    auto type = static_cast<unsigned>(std::stoul(key.substr(2), nullptr, 16));
    if (type < 0xE0 || type > 0xEF) {
        return std::nullopt;
    }
    return static_cast<std::uint8_t>(type);
}

void parse_tlv(const std::string &file, const toml_value &v, Service &s) {
    Table t(file, v, "tlv of service '" + s.name + "'",
            {"unique_id", "crc32c", "authority", "netns", "custom"});
    t.no_unknown_keys();
    s.tlv.unique_id = t.boolean("unique_id").value_or(false);
    s.tlv.crc32c = t.boolean("crc32c").value_or(false);
    if (auto a = t.string("authority")) {
        if (*a == "sni") {
            s.tlv.authority_from_sni = true;
        } else if (a->empty() || a->size() > 255 || !printable_token(*a)) {
            fail(file, *t.get("authority"),
                 "'authority' in " + t.what() +
                     " must be \"sni\" or a host name of 1..255 printable characters");
        } else {
            s.tlv.authority = *a;
        }
    }
    if (auto n = t.string("netns")) {
        if (n->empty() || n->size() > 255 || !printable_token(*n)) {
            fail(file, *t.get("netns"),
                 "'netns' in " + t.what() +
                     " must be a namespace name of 1..255 printable characters");
        }
        s.tlv.netns = *n;
    }
    if (const toml_value *c = t.get("custom")) {
        if (!c->is_table()) {
            fail(file, *c,
                 "'custom' in " + t.what() + " must be a table such as { \"0xE0\" = \"value\" }");
        }
        // In file order, so that of two spellings of one type the later one is refused.
        std::vector<std::pair<std::string, const toml_value *>> entries;
        for (const auto &[key, value] : c->as_table()) {
            entries.emplace_back(key, &value);
        }
        std::sort(entries.begin(), entries.end(), [](const auto &a, const auto &b) {
            return std::pair(line_of(*a.second), a.first) < std::pair(line_of(*b.second), b.first);
        });
        std::map<std::uint8_t, std::pair<std::string, const toml_value *>> by_type;
        for (const auto &[key, value_p] : entries) {
            const toml_value &value = *value_p;
            auto type = custom_tlv_type(key);
            if (!type) {
                fail(file, value, "custom TLV type " + quote_key(key) + " must be 0xE0..0xEF");
            }
            if (!value.is_string()) {
                fail(file, value, "custom TLV " + key + " must be a string");
            }
            if (value.as_string().str.size() > kMaxCustomTlv) {
                fail(file, value,
                     "custom TLV " + key + " is longer than " + std::to_string(kMaxCustomTlv) +
                         " bytes");
            }
            if (auto it = by_type.find(*type); it != by_type.end()) {
                fail(file, value,
                     "custom TLV " + key + " is the same type as '" + it->second.first + "'");
            }
            by_type[*type] = {key, &value};
        }
        for (const auto &[type, kv] : by_type) {
            s.tlv.custom.emplace_back(type, kv.second->as_string().str);
        }
    }
}

// An inline service's header is built once at the SYN and kept in its connection's state.
void check_inline_tlv(const std::string &file, const toml_value &tlv, const Service &s) {
    if (s.tlv.authority_from_sni) {
        fail(file, tlv.as_table().at("authority"),
             "tlv authority = \"sni\" in service '" + s.name +
                 "' cannot be inline: the header is written at the handshake, before any payload "
                 "(SNI) exists; use a fixed authority or mode = \"relay\"");
    }
    if (std::size_t n = max_header_len(s); n > PP_INLINE_HDR_MAX) {
        fail(file, tlv,
             "the PROXY v2 header of inline service '" + s.name + "' would take " +
                 std::to_string(n) + " bytes (" + std::to_string(proxy::kV2Inet6Len) +
                 " for IPv6 addresses, " + std::to_string(n - proxy::kV2Inet6Len) +
                 " of TLVs); an inline header holds at most " + std::to_string(PP_INLINE_HDR_MAX));
    }
}

void parse_health_check(const std::string &file, const toml_value &v, Service &s) {
    Table h(file, v, "health_check of service '" + s.name + "'", {"interval", "timeout", "mode"});
    h.no_unknown_keys();
    HealthCheck c;
    if (auto d = h.duration("interval")) {
        c.interval = ms(*d);
    }
    if (auto d = h.duration("timeout")) {
        c.timeout = ms(*d);
    }
    if (c.timeout > c.interval) {
        fail(file, h.get("timeout") ? *h.get("timeout") : v,
             "health_check timeout " + format_duration(c.timeout) +
                 " is longer than its interval " + format_duration(c.interval));
    }
    c.mode = h.choice("mode", kHealthModeNames).value_or(HealthMode::local);
    s.health_check = c;
}

// The longest name TCP_CONGESTION takes (the kernel's TCP_CA_NAME_MAX is 16, with the NUL).
constexpr std::size_t kCongestionNameMax = 15;

// tcp_congestion = "cubic" (both legs) or { client = "bbr", backend = "cubic" }.
void parse_congestion(const std::string &file, const toml_value &v, Service &s) {
    auto check = [&](const toml_value &at, const std::string &name) {
        if (!valid_name(name, kCongestionNameMax)) {
            fail(file, at,
                 "tcp_congestion " + quote(name) + " of service '" + s.name +
                     "' is not a congestion control name (1.." +
                     std::to_string(kCongestionNameMax) +
                     " characters of A-Z a-z 0-9 _ -, as in "
                     "/proc/sys/net/ipv4/tcp_available_congestion_control)");
        }
        return name;
    };
    if (v.is_string()) {
        s.congestion.client = s.congestion.backend = check(v, v.as_string().str);
        return;
    }
    if (!v.is_table()) {
        fail(file, v,
             "'tcp_congestion' in service '" + s.name +
                 "' must be a name (\"cubic\") or a table { client = \"...\", backend = \"...\" }");
    }
    Table t(file, v, "tcp_congestion of service '" + s.name + "'", {"client", "backend"});
    t.no_unknown_keys();
    for (auto [key, field] :
         {std::pair{"client", &s.congestion.client}, std::pair{"backend", &s.congestion.backend}}) {
        if (auto name = t.string(key)) {
            *field = check(*t.get(key), *name);
        }
    }
}

const std::vector<std::string_view> kServiceKeys = {
    "name",           "protocol",        "listen",       "header",
    "interfaces",     "udp_header",      "on_error",     "transparent",
    "backends",       "relay",           "idle_timeout", "connect_timeout",
    "sni_timeout",    "max_connections", "tlv",          "health_check",
    "tcp_congestion", "attach",          "mode"};

Service parse_service(const std::string &file, const toml_value &v, std::uint32_t id) {
    Service s;
    s.id = id;
    Table t(file, v, "service #" + std::to_string(id), kServiceKeys);
    s.line = t.line();
    // The name first (when it is usable), so every later message can say which service.
    const toml_value *name_v = t.get("name");
    if (name_v && name_v->is_string() && valid_name(name_v->as_string().str)) {
        t.rename("service '" + name_v->as_string().str + "'");
    }
    t.no_unknown_keys();
    auto name = t.string("name");
    if (!name) {
        fail(file, v, t.what() + " has no 'name'");
    }
    if (!valid_name(*name)) {
        fail(file, *name_v,
             "service name " + quote(*name) + " must be 1.." + std::to_string(PP_NAME_LEN - 1) +
                 " characters of A-Z a-z 0-9 _ -");
    }
    s.name = *name;
    const std::string what = t.what();

    auto protocol = t.choice("protocol", kProtocolNames);
    if (!protocol) {
        fail(file, v, what + " has no 'protocol' (\"udp\" or \"tcp\")");
    }
    s.protocol = *protocol;
    const bool udp = s.protocol == Protocol::udp;

    auto listens = t.strings("listen");
    if (listens.empty()) {
        // At the [[service]] line, as there is no key to point at: `run` and `check` stop
        // with exactly this line, before anything is attached.
        fail(file, v, what + " has no 'listen' address");
    }
    for (const auto &[text, at] : listens) {
        auto r = parse_listen(text);
        if (auto *err = std::get_if<std::string>(&r)) {
            fail(file, *at, "listen " + quote(text) + " of " + what + ": " + *err);
        }
        ListenSpec l = std::get<ListenSpec>(r);
        l.line = line_of(*at);
        s.listen.push_back(l);
    }

    auto header = t.choice("header", kHeaderModeNames);
    if (!header) {
        fail(file, v,
             what + " has no 'header' (" +
                 std::string(udp ? "\"v2\" or \"spp\"" : "\"v1\" or \"v2\"") + ")");
    }
    s.header = *header;
    if (udp && s.header == HeaderMode::v1) {
        fail(file, *t.get("header"),
             "PROXY v1 is text for TCP; a UDP service takes \"v2\" or \"spp\"");
    }
    if (!udp && s.header == HeaderMode::spp) {
        fail(file, *t.get("header"), "SPP is for UDP; a TCP service takes \"v1\" or \"v2\"");
    }

    // Keys of the other protocol (or header, or mode) are errors, not silently ignored.
    auto only = [&](const char *key, bool allowed, const std::string &why) {
        if (const toml_value *k = t.get(key); k && !allowed) {
            fail(file, *k, "'" + std::string(key) + "' in " + what + " " + why);
        }
    };
    only("mode", !udp, "is for TCP services (\"relay\" or \"inline\")");
    s.mode = t.choice("mode", kTcpModeNames).value_or(TcpMode::relay);
    const bool inl = s.is_inline();
    only("interfaces", udp || inl,
         "is for UDP services and TCP services with mode = \"inline\" (a relay service is "
         "reached through its sockets)");
    only("udp_header", udp && s.header == HeaderMode::v2,
         "applies to UDP services with header = \"v2\" only");
    only("on_error", udp, "is for UDP services");
    only("attach", udp,
         "is for UDP services (TCP services are reached through sockets or, inline, at tc)");
    only("transparent", !udp, "is for TCP services");
    only("backends", !udp, "is for TCP services (UDP is forwarded by nftables, IPVS or a relay)");
    only("relay", !udp, "is for TCP services");
    only("idle_timeout", !udp, "is for TCP services (UDP flows use global udp_flow_timeout)");
    only("connect_timeout", !udp, "is for TCP services");
    only("sni_timeout", !udp, "is for TCP services");
    only("max_connections", !udp, "is for TCP services");
    only("tlv", !udp && s.header == HeaderMode::v2,
         "applies to TCP services with header = \"v2\" only");
    only("health_check", !udp, "is for TCP services");
    only("tcp_congestion", !udp, "is for TCP services");
    // What belongs to the relay: inline, the front host forwards and the client's own TCP
    // connection reaches the backend.
    for (auto [key, why] : {
             std::pair{"backends", "the front host forwards (DNAT, IPVS, routes)"},
             std::pair{"transparent", "no socket binds its addresses, nothing to steer"},
             std::pair{"relay", "its connections are not terminated, nothing is relayed"},
             std::pair{"connect_timeout", "the client itself connects to the backend"},
             std::pair{"sni_timeout", "the header is written at the handshake, before any SNI"},
             std::pair{"max_connections", "[global] inline_max_conns bounds its connections"},
             std::pair{"health_check", "it has no backends to probe"},
             std::pair{"tcp_congestion", "the client's and the backend's own stacks choose"},
         }) {
        only(key, !inl, "is for relay services: with mode = \"inline\" " + std::string(why));
    }

    if (udp || inl) {
        std::map<std::string, unsigned> seen;
        for (const auto &[ifname, at] : t.strings("interfaces")) {
            if (!valid_ifname(ifname)) {
                fail(file, *at,
                     "interface name " + quote(ifname) +
                         " is not a valid Linux interface name (1..15 bytes, no '/', ':' or "
                         "spaces)");
            }
            if (!seen.emplace(ifname, 0).second) {
                fail(file, *at, "interface " + quote(ifname) + " is listed twice in " + what);
            }
            s.interfaces.push_back(ifname);
        }
        if (s.interfaces.empty()) {
            fail(file, v, what + " needs 'interfaces': the client-facing interfaces to attach to");
        }
    }
    if (udp) {
        s.udp_header =
            t.choice("udp_header", kUdpHeaderPolicyNames).value_or(UdpHeaderPolicy::first);
        s.on_error = t.choice("on_error", kOnErrorNames).value_or(OnError::drop);
        s.attach = t.choice("attach", kAttachHookNames).value_or(AttachHook::tc);
        return s;
    }

    s.transparent = t.boolean("transparent").value_or(false);
    if (!s.transparent && !inl) {
        // A plain listening socket binds one address or the wildcard, never a prefix.
        for (const auto &l : s.listen) {
            unsigned full = l.addr.is_v4() ? 32 : 128;
            if (l.prefix_len != 0 && l.prefix_len != full) {
                throw ConfigError(file, l.line,
                                  "listen " + quote(l.text) + " of " + what +
                                      " is a prefix: a TCP service accepts for a prefix only "
                                      "with transparent = true (sk_lookup steering)");
            }
        }
    }
    for (const auto &[text, at] : t.strings("backends")) {
        auto ep = Endpoint::parse(text);
        if (!ep) {
            fail(file, *at, "backend " + quote(text) + " must be \"ADDR:PORT\" or \"[IPV6]:PORT\"");
        }
        if (ep->addr.is_unspecified() || ep->port == 0) {
            fail(file, *at,
                 "backend " + quote(text) + " needs a real address and a port other than 0");
        }
        s.backends.push_back(*ep);
    }
    if (s.backends.empty() && !inl) {
        fail(file, v, what + " needs 'backends': where to connect, \"ADDR:PORT\"");
    }
    s.relay = t.choice("relay", kRelayModeNames).value_or(RelayMode::splice);
    for (auto [key, field] : {std::pair{"idle_timeout", &s.idle_timeout},
                              std::pair{"connect_timeout", &s.connect_timeout},
                              std::pair{"sni_timeout", &s.sni_timeout}}) {
        if (auto d = t.duration(key)) {
            *field = ms(*d);  // ms is the smallest unit: never rounds to 0
        }
    }
    if (const toml_value *m = t.get("max_connections")) {
        if (!m->is_integer() || m->as_integer() < 1 || m->as_integer() > PP_MAX_TCP_CONNS) {
            fail(file, *m,
                 "'max_connections' in " + what + " must be an integer in 1.." +
                     std::to_string(PP_MAX_TCP_CONNS) + " (the relay slots)");
        }
        s.max_connections = static_cast<std::uint32_t>(m->as_integer());
    }
    if (const toml_value *tlv = t.get("tlv")) {
        parse_tlv(file, *tlv, s);
        if (inl) {
            check_inline_tlv(file, *tlv, s);
        }
    }
    if (const toml_value *w = t.get("sni_timeout"); w && !s.tlv.authority_from_sni) {
        fail(file, *w,
             "'sni_timeout' in " + what + " applies only with tlv = { authority = \"sni\" }");
    }
    if (const toml_value *hc = t.get("health_check")) {
        parse_health_check(file, *hc, s);
    }
    if (const toml_value *cc = t.get("tcp_congestion")) {
        parse_congestion(file, *cc, s);
    }
    return s;
}

// Listen specs of one protocol that claim the same prefix and an overlapping port, and
// the total number of services map keys.
void check_overlaps(const std::string &file, const std::vector<Service> &services) {
    struct Claim {
        const Service *svc;
        const ListenSpec *l;
    };
    std::map<std::tuple<int, std::array<std::uint8_t, 16>, unsigned, bool>, std::vector<Claim>>
        by_prefix;
    std::size_t keys = 0;
    for (const auto &s : services) {
        for (const auto &l : s.listen) {
            keys += l.port_count();
            if (keys > PP_MAX_SERVICE_KEYS) {
                throw ConfigError(file, l.line,
                                  "listen " + quote(l.text) + " of service '" + s.name +
                                      "' brings the services map to " + std::to_string(keys) +
                                      " keys (one per address prefix and port); at most " +
                                      std::to_string(PP_MAX_SERVICE_KEYS) + " fit");
            }
            auto &claims =
                by_prefix[{static_cast<int>(s.protocol), masked(l), l.prefix_len, l.addr.is_v4()}];
            for (const auto &c : claims) {
                if (l.port_first <= c.l->port_last && c.l->port_first <= l.port_last) {
                    throw ConfigError(file, l.line,
                                      "listen " + quote(l.text) + " of service '" + s.name +
                                          "' overlaps " + quote(c.l->text) + " of service '" +
                                          c.svc->name + "' (line " + std::to_string(c.l->line) +
                                          ")");
                }
            }
            claims.push_back({&s, &l});
        }
    }
}

// One injector per interface: every UDP service on an interface attaches at the same hook
// (a datagram injected at XDP would reach tc ingress already carrying a header, and be
// dropped there as forged). Points at the later service's 'attach' (or its [[service]]).
void check_hooks(const std::string &file, const toml_value &root,
                 const std::vector<Service> &services) {
    std::map<std::string, const Service *> first;
    for (std::size_t i = 0; i < services.size(); i++) {
        const Service &s = services[i];
        if (s.protocol != Protocol::udp) {
            continue;  // inline TCP has its own tc filters and no attach
        }
        for (const auto &ifname : s.interfaces) {
            auto [it, fresh] = first.emplace(ifname, &s);
            const Service &o = *it->second;
            if (fresh || o.attach == s.attach) {
                continue;
            }
            const toml_value &v = root.as_table().at("service").as_array().at(i);
            const toml_value *at = v.as_table().count("attach") ? &v.as_table().at("attach") : &v;
            fail(file, *at,
                 "service '" + s.name + "' injects on " + quote(ifname) + " at " +
                     to_string(s.attach) + " but service '" + o.name + "' (line " +
                     std::to_string(o.line) + ") injects there at " + to_string(o.attach) +
                     ": one injector per interface, give both the same 'attach'");
        }
    }
}

void parse_global(const std::string &file, const toml_value &g, GlobalConfig &out) {
    Table t(file, g, "[global]",
            {"bpffs", "udp_flow_timeout", "udp_max_flows", "inline_max_conns", "metrics"});
    t.no_unknown_keys();
    if (auto b = t.string("bpffs")) {
        bool dots = ("/" + *b + "/").find("/../") != std::string::npos ||
                    ("/" + *b + "/").find("/./") != std::string::npos;
        if (b->size() < 2 || b->front() != '/' || dots) {
            fail(file, *t.get("bpffs"),
                 "'bpffs' in [global] must be an absolute directory path without \".\" or "
                 "\"..\" (such as \"/sys/fs/bpf/ppinject\")");
        }
        while (b->size() > 1 && b->back() == '/') {
            b->pop_back();
        }
        out.bpffs = *b;
    }
    if (auto d = t.duration("udp_flow_timeout")) {
        out.udp_flow_timeout = *d;
    }
    for (auto [key, field] : {std::pair{"udp_max_flows", &out.udp_max_flows},
                              std::pair{"inline_max_conns", &out.inline_max_conns}}) {
        if (const toml_value *m = t.get(key)) {
            if (!m->is_integer() || m->as_integer() < 1 || m->as_integer() > 16777216) {
                fail(file, *m,
                     "'" + std::string(key) + "' in [global] must be an integer in 1..16777216");
            }
            *field = static_cast<std::uint32_t>(m->as_integer());
        }
    }
    if (auto m = t.string("metrics")) {
        auto ep = Endpoint::parse(*m);
        if (!ep || ep->port == 0) {
            fail(file, *t.get("metrics"),
                 "'metrics' in [global] must be \"ADDR:PORT\" or \"[IPV6]:PORT\" with a port "
                 "other than 0");
        }
        out.metrics = ep;
    }
}

Config parse_value(const toml_value &root, const std::string &file) {
    LineIndex lines(root);
    Config cfg;
    cfg.path = file;
    Table top(file, root, "the top level", {"global", "service"});
    top.set_where("at the top level");
    top.no_unknown_keys();
    if (const toml_value *g = top.get("global")) {
        parse_global(file, *g, cfg.global);
    }
    const toml_value *services = top.get("service");
    if (!services) {
        throw ConfigError(file, 1, "no [[service]] defined: nothing to do");
    }
    if (!services->is_array()) {
        fail(file, *services, "'service' must be an array of tables: write [[service]]");
    }
    const auto &arr = services->as_array();
    if (arr.empty()) {
        fail(file, *services, "no [[service]] defined: nothing to do");
    }
    if (arr.size() >= PP_MAX_SERVICES) {
        fail(file, arr[PP_MAX_SERVICES - 1],
             "too many services: at most " + std::to_string(PP_MAX_SERVICES - 1) + " (ids 1.." +
                 std::to_string(PP_MAX_SERVICES - 1) + ")");
    }
    std::map<std::string, unsigned> names;
    for (const auto &v : arr) {
        Service s = parse_service(file, v, static_cast<std::uint32_t>(cfg.services.size() + 1));
        if (auto it = names.find(s.name); it != names.end()) {
            fail(file, v.as_table().at("name"),
                 "service name '" + s.name + "' is already used by the service on line " +
                     std::to_string(it->second));
        }
        names[s.name] = s.line;
        cfg.services.push_back(std::move(s));
    }
    check_overlaps(file, cfg.services);
    check_hooks(file, root, cfg.services);
    return cfg;
}

}  // namespace

Config parse_config(std::string_view toml_text, const std::string &display_path) {
    return parse_value(parse_toml(toml_text, display_path), display_path);
}

Config load_config(const std::string &path) {
    return parse_config(read_config_file(path), path);
}

}  // namespace ppinject
