#include "core/config.hpp"

#include <fmt/format.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <toml.hpp>
#include <variant>

#include "core/kernel.hpp"

namespace ppinject {
namespace {

using toml_value = toml::basic_value<toml::discard_comments>;

// Throws ConfigError at `v`'s line.
[[noreturn]] void fail(const std::string &file, const toml_value &v, const std::string &reason) {
    throw ConfigError(file, static_cast<unsigned>(v.location().line()), reason);
}

// Reading one TOML table with its allowed keys; unknown keys are errors, so typos never
// pass silently.
class Table {
  public:
    Table(const std::string &file, const toml_value &v, std::string what)
        : file_(file), v_(v), what_(std::move(what)) {
        if (!v.is_table()) {
            fail(file_, v, what_ + " must be a table");
        }
    }

    const toml_value *get(const std::string &key) {
        known_.insert(key);
        const auto &t = v_.as_table();
        auto it = t.find(key);
        return it == t.end() ? nullptr : &it->second;
    }

    std::optional<std::string> string(const std::string &key) {
        const toml_value *v = get(key);
        if (!v) {
            return std::nullopt;
        }
        if (!v->is_string()) {
            fail(file_, *v, "'" + key + "' in " + what_ + " must be a string");
        }
        return v->as_string().str;
    }

    std::optional<bool> boolean(const std::string &key) {
        const toml_value *v = get(key);
        if (!v) {
            return std::nullopt;
        }
        if (!v->is_boolean()) {
            fail(file_, *v, "'" + key + "' in " + what_ + " must be true or false");
        }
        return v->as_boolean();
    }

    // A string or an array of strings.
    std::vector<std::pair<std::string, const toml_value *>> strings(const std::string &key) {
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
            fail(file_, *v,
                 "'" + key + "' in " + what_ + " must be a string or an array of strings");
        }
        for (const auto &e : v->as_array()) {
            if (!e.is_string()) {
                fail(file_, e, "'" + key + "' in " + what_ + " must hold strings only");
            }
            out.emplace_back(e.as_string().str, &e);
        }
        return out;
    }

    // One of `allowed`, or nullopt when absent.
    template <typename E>
    std::optional<E> choice(const std::string &key,
                            std::initializer_list<std::pair<const char *, E>> allowed) {
        auto s = string(key);
        if (!s) {
            return std::nullopt;
        }
        std::string names;
        for (const auto &[name, value] : allowed) {
            if (*s == name) {
                return value;
            }
            names += std::string(names.empty() ? "" : " | ") + "\"" + name + "\"";
        }
        fail(file_, *get(key),
             "'" + key + "' in " + what_ + " is \"" + *s + "\"; allowed: " + names);
    }

    std::optional<std::chrono::nanoseconds> duration(const std::string &key) {
        auto s = string(key);
        if (!s) {
            return std::nullopt;
        }
        auto d = parse_duration(*s);
        if (!d) {
            fail(file_, *get(key),
                 "'" + key + "' in " + what_ + " is \"" + *s +
                     "\"; expected a positive duration such as \"500ms\", \"30s\", \"1m30s\"");
        }
        return d;
    }

    // Rejects keys nobody asked for.
    void no_unknown_keys() {
        for (const auto &[key, value] : v_.as_table()) {
            if (!known_.count(key)) {
                fail(file_, value, "unknown key '" + key + "' in " + what_);
            }
        }
    }

    // Once the table's name is known, errors say "service 'dns'" instead of "service #1".
    void rename(std::string what) { what_ = std::move(what); }
    unsigned line() const { return static_cast<unsigned>(v_.location().line()); }
    const toml_value &value() const { return v_; }

  private:
    const std::string &file_;
    const toml_value &v_;
    std::string what_;
    std::set<std::string> known_;
};

bool valid_name(const std::string &s) {
    if (s.empty() || s.size() >= PP_NAME_LEN) {
        return false;
    }
    for (char c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
            return false;
        }
    }
    return true;
}

bool valid_ifname(const std::string &s) {
    if (s.empty() || s.size() > 15 || s == "." || s == "..") {
        return false;
    }
    for (char c : s) {
        if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) || c < 0x21) {
            return false;
        }
    }
    return true;
}

// "ADDR[/PREFIX]:PORT[-PORT]" or "[V6[/PREFIX]]:PORT[-PORT]"; an error text on failure.
std::variant<ListenSpec, std::string> parse_listen(const std::string &text) {
    std::string_view t = text, host, ports;
    if (!t.empty() && t.front() == '[') {
        auto close = t.find(']');
        if (close == std::string_view::npos || close + 1 >= t.size() || t[close + 1] != ':') {
            return "expected \"[IPV6]:PORT\" or \"[IPV6/PREFIX]:PORT\"";
        }
        host = t.substr(1, close - 1);
        ports = t.substr(close + 2);
    } else {
        auto colon = t.rfind(':');
        if (colon == std::string_view::npos) {
            return "missing \":PORT\"";
        }
        host = t.substr(0, colon);
        ports = t.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return "an IPv6 address needs brackets: \"[" + std::string(host) + "]:PORT\"";
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
        return "\"" + std::string(addr) + "\" is not an IPv4 or IPv6 address";
    }
    if ((ip->is_v4() && addr.find(':') != std::string_view::npos)) {
        return "write IPv4 addresses as dotted quads, not IPv4-mapped IPv6";
    }
    l.addr = *ip;
    unsigned full = ip->is_v4() ? 32 : 128;
    l.prefix_len = full;
    if (slash != std::string_view::npos) {
        std::string_view p = host.substr(slash + 1);
        auto n = parse_port(p);  // a small decimal without sign or leading zeros
        if (!n || *n > full) {
            return "prefix length \"" + std::string(p) + "\" must be 0.." + std::to_string(full);
        }
        l.prefix_len = *n;
    }
    if (ip->is_unspecified() && slash == std::string_view::npos) {
        l.prefix_len = 0;  // 0.0.0.0 and [::] are wildcards
    }
    // Host bits past the prefix must be zero: "192.0.2.1/24" is almost always a typo.
    const auto &m = ip->mapped();
    unsigned base = ip->is_v4() ? 96 : 0;
    for (unsigned bit = base + l.prefix_len; bit < 128; bit++) {
        if (m[bit / 8] & (0x80u >> (bit % 8))) {
            return "\"" + std::string(host) + "\" has host bits set past the /" +
                   std::to_string(l.prefix_len) + " prefix";
        }
    }
    auto dash = ports.find('-');
    auto first = parse_port(ports.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : parse_port(ports.substr(dash + 1));
    if (!first || !last) {
        return "port \"" + std::string(ports) + "\" must be N or N-M with N, M in 1..65535";
    }
    if (*first == 0 || *last < *first) {
        return "port range \"" + std::string(ports) + "\" must be 1..65535 with N <= M";
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

void parse_tlv(const std::string &file, const toml_value &v, Service &s) {
    Table t(file, v, "tlv of service '" + s.name + "'");
    s.tlv.unique_id = t.boolean("unique_id").value_or(false);
    s.tlv.crc32c = t.boolean("crc32c").value_or(false);
    if (auto a = t.string("authority")) {
        if (*a == "sni") {
            s.tlv.authority_from_sni = true;
        } else if (a->empty() || a->size() > 255) {
            fail(file, *t.get("authority"),
                 "'authority' must be \"sni\" or a host name of 1..255 bytes");
        } else {
            s.tlv.authority = *a;
        }
    }
    if (auto n = t.string("netns")) {
        if (n->empty() || n->size() > 255) {
            fail(file, *t.get("netns"), "'netns' must be a namespace name of 1..255 bytes");
        }
        s.tlv.netns = *n;
    }
    if (const toml_value *c = t.get("custom")) {
        Table custom(file, *c, "tlv.custom of service '" + s.name + "'");
        for (const auto &[key, value] : c->as_table()) {
            unsigned type = 0;
            bool ok = key.size() == 4 && key[0] == '0' && (key[1] == 'x' || key[1] == 'X') &&
                      std::sscanf(key.c_str() + 2, "%2x", &type) == 1 && type >= 0xE0 &&
                      type <= 0xEF;
            if (!ok) {
                fail(file, value, "custom TLV type '" + key + "' must be 0xE0..0xEF");
            }
            if (!value.is_string()) {
                fail(file, value, "custom TLV " + key + " must be a string");
            }
            s.tlv.custom.emplace_back(static_cast<std::uint8_t>(type), value.as_string().str);
            custom.get(key);
        }
    }
    t.no_unknown_keys();
}

Service parse_service(const std::string &file, const toml_value &v, std::uint32_t id) {
    Service s;
    s.id = id;
    Table t(file, v, "service #" + std::to_string(id));
    s.line = t.line();
    auto name = t.string("name");
    if (!name) {
        fail(file, v, "service #" + std::to_string(id) + " has no 'name'");
    }
    if (!valid_name(*name)) {
        fail(file, *t.get("name"),
             "service name \"" + *name + "\" must be 1..31 characters of A-Z a-z 0-9 _ -");
    }
    s.name = *name;
    std::string what = "service '" + s.name + "'";
    t.rename(what);

    auto protocol =
        t.choice<Protocol>("protocol", {{"udp", Protocol::udp}, {"tcp", Protocol::tcp}});
    if (!protocol) {
        fail(file, v, what + " has no 'protocol' (\"udp\" or \"tcp\")");
    }
    s.protocol = *protocol;
    bool udp = s.protocol == Protocol::udp;

    auto listens = t.strings("listen");
    if (listens.empty()) {
        fail(file, v, what + " has no 'listen' address");
    }
    for (const auto &[text, at] : listens) {
        auto r = parse_listen(text);
        if (auto *err = std::get_if<std::string>(&r)) {
            fail(file, *at, "listen \"" + text + "\" of " + what + ": " + *err);
        }
        ListenSpec l = std::get<ListenSpec>(r);
        l.line = static_cast<unsigned>(at->location().line());
        s.listen.push_back(l);
    }

    auto header = t.choice<HeaderMode>(
        "header", {{"v1", HeaderMode::v1}, {"v2", HeaderMode::v2}, {"spp", HeaderMode::spp}});
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

    // Keys of the other protocol are errors, not silently ignored.
    auto only = [&](const char *key, bool allowed, const std::string &why) {
        if (const toml_value *k = t.get(key); k && !allowed) {
            fail(file, *k, "'" + std::string(key) + "' " + why);
        }
    };
    only("interfaces", udp, "is for UDP services (TCP services are reached through sockets)");
    only("udp_header", udp && s.header == HeaderMode::v2,
         "applies to UDP services with header = \"v2\" only");
    only("on_error", udp, "is for UDP services");
    only("transparent", !udp, "is for TCP services");
    only("backends", !udp, "is for TCP services (UDP is forwarded by nftables, IPVS or a relay)");
    only("splice", !udp, "is for TCP services");
    only("idle_timeout", !udp, "is for TCP services (UDP flows use global udp_flow_timeout)");
    only("connect_timeout", !udp, "is for TCP services");
    only("tlv", !udp && s.header == HeaderMode::v2,
         "applies to TCP services with header = \"v2\" only");
    only("health_check", !udp, "is for TCP services");

    if (udp) {
        for (const auto &[ifname, at] : t.strings("interfaces")) {
            if (!valid_ifname(ifname)) {
                fail(file, *at,
                     "interface name \"" + ifname + "\" is not a valid Linux interface name");
            }
            s.interfaces.push_back(ifname);
        }
        if (s.interfaces.empty()) {
            fail(file, v, what + " needs 'interfaces': the client-facing interfaces to attach to");
        }
        s.udp_header = t.choice<UdpHeaderPolicy>("udp_header", {{"first", UdpHeaderPolicy::first},
                                                                {"every", UdpHeaderPolicy::every}})
                           .value_or(UdpHeaderPolicy::first);
        s.on_error =
            t.choice<OnError>("on_error", {{"drop", OnError::drop}, {"pass", OnError::pass}})
                .value_or(OnError::drop);
    } else {
        s.transparent = t.boolean("transparent").value_or(false);
        for (const auto &[text, at] : t.strings("backends")) {
            auto ep = Endpoint::parse(text);
            if (!ep) {
                fail(file, *at,
                     "backend \"" + text + "\" must be \"ADDR:PORT\" or \"[IPV6]:PORT\"");
            }
            if (ep->addr.is_unspecified() || ep->port == 0) {
                fail(file, *at,
                     "backend \"" + text + "\" needs a real address and a port other than 0");
            }
            s.backends.push_back(*ep);
        }
        if (s.backends.empty()) {
            fail(file, v, what + " needs 'backends': where to connect, \"ADDR:PORT\"");
        }
        s.splice = t.choice<SpliceMode>("splice", {{"sockmap", SpliceMode::sockmap},
                                                   {"splice", SpliceMode::splice},
                                                   {"copy", SpliceMode::copy}})
                       .value_or(SpliceMode::sockmap);
        if (auto d = t.duration("idle_timeout")) {
            s.idle_timeout = ms(*d);
        }
        if (auto d = t.duration("connect_timeout")) {
            s.connect_timeout = ms(*d);
        }
        if (const toml_value *tlv = t.get("tlv")) {
            parse_tlv(file, *tlv, s);
        }
        if (const toml_value *hc = t.get("health_check")) {
            Table h(file, *hc, "health_check of " + what);
            HealthCheck c;
            if (auto d = h.duration("interval")) {
                c.interval = ms(*d);
            }
            if (auto d = h.duration("timeout")) {
                c.timeout = ms(*d);
            }
            c.mode = h.choice<HealthMode>(
                          "mode", {{"local", HealthMode::local}, {"proxy", HealthMode::proxy}})
                         .value_or(HealthMode::local);
            h.no_unknown_keys();
            s.health_check = c;
        }
    }
    t.no_unknown_keys();
    return s;
}

// Listen specs of one protocol that claim the same prefix and an overlapping port.
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
            keys += static_cast<std::size_t>(l.port_last - l.port_first + 1);
            auto &claims =
                by_prefix[{static_cast<int>(s.protocol), masked(l), l.prefix_len, l.addr.is_v4()}];
            for (const auto &c : claims) {
                if (l.port_first <= c.l->port_last && c.l->port_first <= l.port_last) {
                    throw ConfigError(file, l.line,
                                      "listen \"" + l.text + "\" of service '" + s.name +
                                          "' overlaps \"" + c.l->text + "\" of service '" +
                                          c.svc->name + "' (line " + std::to_string(c.l->line) +
                                          ")");
                }
            }
            claims.push_back({&s, &l});
        }
    }
    if (keys > PP_MAX_SERVICE_KEYS) {
        throw ConfigError(file, services.back().line,
                          "the listen port ranges add up to " + std::to_string(keys) +
                              " address/port keys; at most " + std::to_string(PP_MAX_SERVICE_KEYS) +
                              " fit the services map");
    }
}

Config parse_value(const toml_value &root, const std::string &file) {
    Config cfg;
    cfg.path = file;
    Table top(file, root, "the top level");
    if (const toml_value *g = top.get("global")) {
        Table t(file, *g, "[global]");
        if (auto b = t.string("bpffs")) {
            if (b->empty() || b->front() != '/' || b->find("..") != std::string::npos) {
                fail(file, *t.get("bpffs"), "'bpffs' must be an absolute path without \"..\"");
            }
            while (b->size() > 1 && b->back() == '/') {
                b->pop_back();
            }
            cfg.global.bpffs = *b;
        }
        if (auto d = t.duration("udp_flow_timeout")) {
            cfg.global.udp_flow_timeout = *d;
        }
        if (const toml_value *m = t.get("udp_max_flows")) {
            if (!m->is_integer() || m->as_integer() < 1 || m->as_integer() > 16777216) {
                fail(file, *m, "'udp_max_flows' must be an integer in 1..16777216");
            }
            cfg.global.udp_max_flows = static_cast<std::uint32_t>(m->as_integer());
        }
        if (auto m = t.string("metrics")) {
            auto ep = Endpoint::parse(*m);
            if (!ep) {
                fail(file, *t.get("metrics"), "'metrics' must be \"ADDR:PORT\" or \"[IPV6]:PORT\"");
            }
            cfg.global.metrics = ep;
        }
        t.no_unknown_keys();
    }
    const toml_value *services = top.get("service");
    top.no_unknown_keys();
    if (!services) {
        throw ConfigError(file, 0, "no [[service]] defined");
    }
    if (!services->is_array()) {
        fail(file, *services, "'service' must be an array of tables: write [[service]]");
    }
    const auto &arr = services->as_array();
    if (arr.size() >= PP_MAX_SERVICES) {
        fail(file, arr.back(), "at most " + std::to_string(PP_MAX_SERVICES - 1) + " services");
    }
    std::map<std::string, unsigned> names;
    for (const auto &v : arr) {
        Service s = parse_service(file, v, static_cast<std::uint32_t>(cfg.services.size() + 1));
        if (auto it = names.find(s.name); it != names.end()) {
            throw ConfigError(file, s.line,
                              "service name '" + s.name + "' is already used on line " +
                                  std::to_string(it->second));
        }
        names[s.name] = s.line;
        cfg.services.push_back(std::move(s));
    }
    check_overlaps(file, cfg.services);
    return cfg;
}

}  // namespace

ConfigError::ConfigError(const std::string &file, unsigned line, const std::string &reason)
    : std::runtime_error(line ? file + ":" + std::to_string(line) + ": " + reason
                              : file + ": " + reason),
      file_(file),
      line_(line),
      reason_(reason) {}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    using namespace std::chrono;
    nanoseconds total{0};
    std::size_t i = 0;
    if (text.empty()) {
        return std::nullopt;
    }
    while (i < text.size()) {
        std::size_t start = i;
        std::uint64_t n = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
            if (n > 1'000'000'000ull) {
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
        auto count = static_cast<std::int64_t>(n);
        if (unit == "ms") {
            total += milliseconds(count);
        } else if (unit == "s") {
            total += seconds(count);
        } else if (unit == "m") {
            total += minutes(count);
        } else if (unit == "h") {
            total += hours(count);
        } else {
            return std::nullopt;
        }
    }
    if (total.count() <= 0) {
        return std::nullopt;
    }
    return total;
}

Config parse_config(std::string_view toml_text, const std::string &display_path) {
    std::istringstream in{std::string(toml_text)};
    toml_value root;
    try {
        root = toml::parse<toml::discard_comments>(in, display_path);
    } catch (const toml::syntax_error &e) {
        // toml11's message is several lines; keep the first, without its "[error] toml::x: ".
        std::string msg = e.what();
        msg = msg.substr(0, msg.find('\n'));
        if (msg.rfind("[error] ", 0) == 0) {
            msg = msg.substr(8);
        }
        if (auto colon = msg.find(": ");
            msg.rfind("toml::", 0) == 0 && colon != std::string::npos) {
            msg = msg.substr(colon + 2);
        }
        throw ConfigError(display_path, static_cast<unsigned>(e.location().line()),
                          "TOML syntax: " + msg);
    }
    return parse_value(root, display_path);
}

Config load_config(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw ConfigError(path, 0, std::string("cannot read: ") + std::strerror(errno));
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return parse_config(ss.str(), path);
}

std::string to_string(Protocol p) {
    return p == Protocol::udp ? "udp" : "tcp";
}
std::string to_string(HeaderMode h) {
    return h == HeaderMode::v1 ? "v1" : h == HeaderMode::v2 ? "v2" : "spp";
}
std::string to_string(UdpHeaderPolicy u) {
    return u == UdpHeaderPolicy::first ? "first" : "every";
}
std::string to_string(OnError o) {
    return o == OnError::drop ? "drop" : "pass";
}
std::string to_string(SpliceMode s) {
    return s == SpliceMode::sockmap ? "sockmap" : s == SpliceMode::splice ? "splice" : "copy";
}

std::string to_string(const ListenSpec &l) {
    std::string a = l.addr.to_string();
    unsigned full = l.addr.is_v4() ? 32 : 128;
    if (l.prefix_len != full) {
        a += "/" + std::to_string(l.prefix_len);
    }
    if (!l.addr.is_v4()) {
        a = "[" + a + "]";
    }
    return l.port_first == l.port_last ? fmt::format("{}:{}", a, l.port_first)
                                       : fmt::format("{}:{}-{}", a, l.port_first, l.port_last);
}

std::string format_duration(std::chrono::nanoseconds d) {
    auto msec = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    if (msec % 3'600'000 == 0) {
        return fmt::format("{}h", msec / 3'600'000);
    }
    if (msec % 60'000 == 0) {
        return fmt::format("{}m", msec / 60'000);
    }
    return msec % 1000 == 0 ? fmt::format("{}s", msec / 1000) : fmt::format("{}ms", msec);
}

std::string describe(const Config &cfg) {
    std::string out = fmt::format(
        "pin root          {}\nudp_flow_timeout  {}\nudp_max_flows     {}\n", cfg.global.bpffs,
        format_duration(cfg.global.udp_flow_timeout), cfg.global.udp_max_flows);
    if (cfg.global.metrics) {
        out +=
            fmt::format("metrics           http://{}/metrics\n", cfg.global.metrics->to_string());
    }
    for (const auto &s : cfg.services) {
        out += fmt::format("\nservice {} (id {}, line {}): {} header {}", s.name, s.id, s.line,
                           to_string(s.protocol), to_string(s.header));
        if (s.protocol == Protocol::udp) {
            if (s.header == HeaderMode::v2) {
                out += fmt::format(" on the {} datagram{}",
                                   s.udp_header == UdpHeaderPolicy::first ? "first" : "every",
                                   s.udp_header == UdpHeaderPolicy::first ? " of each flow" : "");
            }
            out += fmt::format(", on_error {}\n", to_string(s.on_error));
        } else {
            out += fmt::format(", {}, splice {}\n",
                               s.transparent ? "transparent (sk_lookup)" : "listening",
                               to_string(s.splice));
        }
        for (const auto &l : s.listen) {
            out += fmt::format("  listen      {}\n", to_string(l));
        }
        for (const auto &i : s.interfaces) {
            out += fmt::format("  interface   {}\n", i);
        }
        for (const auto &b : s.backends) {
            out += fmt::format("  backend     {}\n", b.to_string());
        }
        if (s.protocol == Protocol::tcp) {
            out += fmt::format("  timeouts    connect {}, idle {}\n",
                               format_duration(s.connect_timeout), format_duration(s.idle_timeout));
        }
    }
    return out;
}

nlohmann::json to_json(const Config &cfg) {
    nlohmann::json j;
    j["path"] = cfg.path;
    j["global"] = {{"bpffs", cfg.global.bpffs},
                   {"udp_flow_timeout_ms", ms(cfg.global.udp_flow_timeout).count()},
                   {"udp_max_flows", cfg.global.udp_max_flows}};
    if (cfg.global.metrics) {
        j["global"]["metrics"] = cfg.global.metrics->to_string();
    }
    j["services"] = nlohmann::json::array();
    for (const auto &s : cfg.services) {
        nlohmann::json js = {{"id", s.id},
                             {"name", s.name},
                             {"line", s.line},
                             {"protocol", to_string(s.protocol)},
                             {"header", to_string(s.header)}};
        js["listen"] = nlohmann::json::array();
        for (const auto &l : s.listen) {
            js["listen"].push_back({{"address", l.addr.to_string()},
                                    {"prefix_len", l.prefix_len},
                                    {"port_first", l.port_first},
                                    {"port_last", l.port_last}});
        }
        if (s.protocol == Protocol::udp) {
            js["interfaces"] = s.interfaces;
            js["udp_header"] = to_string(s.udp_header);
            js["on_error"] = to_string(s.on_error);
        } else {
            js["transparent"] = s.transparent;
            js["backends"] = nlohmann::json::array();
            for (const auto &b : s.backends) {
                js["backends"].push_back(b.to_string());
            }
            js["splice"] = to_string(s.splice);
            js["connect_timeout_ms"] = s.connect_timeout.count();
            js["idle_timeout_ms"] = s.idle_timeout.count();
        }
        j["services"].push_back(js);
    }
    return j;
}

}  // namespace ppinject
