// ppinject decode: one PROXY v1/v2 or SPP header from stdin, printed for people or as JSON.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "codec/proxy.hpp"

namespace ppinject::cli {
namespace {

using namespace ppinject::proxy;
using json = nlohmann::ordered_json;

std::vector<std::uint8_t> read_stdin() {
    std::vector<std::uint8_t> data;
    std::uint8_t buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
        data.insert(data.end(), buf, buf + n);
    }
    return data;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

// Hex text to bytes; whitespace, ':' separators and "0x" prefixes (before a byte) are ignored.
std::optional<std::vector<std::uint8_t>> from_hex(const std::vector<std::uint8_t> &text,
                                                  std::string &why) {
    std::vector<std::uint8_t> out;
    int high = -1;
    for (std::size_t i = 0; i < text.size(); i++) {
        char c = static_cast<char>(text[i]);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == ':') {
            continue;
        }
        if (high < 0 && c == '0' && i + 1 < text.size() && (text[i + 1] | 0x20) == 'x') {
            i++;
            continue;
        }
        int v = hex_digit(c);
        if (v < 0) {
            why = c >= 0x20 && c < 0x7F
                      ? fmt::format("invalid hex character '{}' at offset {}", c, i)
                      : fmt::format("invalid hex character 0x{:02x} at offset {}", text[i], i);
            return std::nullopt;
        }
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(high << 4 | v));
            high = -1;
        }
    }
    if (high >= 0) {
        why = "odd number of hex digits";
        return std::nullopt;
    }
    return out;
}

std::string hex(Bytes b) {
    std::string s;
    for (auto v : b) {
        s += fmt::format("{:02x}", v);
    }
    return s;
}

// Text without control characters (UTF-8 passes).
bool printable(Bytes b) {
    for (auto c : b) {
        if (c < 0x20 || c == 0x7F) {
            return false;
        }
    }
    return true;
}

// The address as it travels: an IPv4-mapped address of an IPv6 header stays mapped.
std::string address_text(const IpAddress &a, bool as_v6) {
    if (!as_v6) {
        return a.to_string();
    }
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, a.mapped().data(), buf, sizeof buf);
    return buf;
}

json endpoint(const Endpoint &e, bool as_v6) {
    return {{"address", address_text(e.addr, as_v6)}, {"port", e.port}};
}

json client_flags(std::uint8_t client) {
    json flags = json::array();
    for (auto [bit, name] : {std::pair{tlv::client_ssl, "SSL"},
                             {tlv::client_cert_conn, "CERT_CONN"},
                             {tlv::client_cert_sess, "CERT_SESS"}}) {
        if (client & bit) {
            flags.push_back(name);
        }
    }
    return flags;
}

json tlv_json(const Tlv &t, bool ssl_sub) {
    json j = {{"type", t.type},
              {"name", tlv_name(t.type, ssl_sub)},
              {"length", t.value.size()},
              {"value_hex", hex(t.value)}};
    bool text = ssl_sub ? t.type != tlv::ssl_client_cert
                        : t.type == tlv::alpn || t.type == tlv::authority || t.type == tlv::netns;
    if (text && printable(t.value)) {
        j["value"] = std::string(t.text());
    }
    if (!ssl_sub && t.type == tlv::crc32c) {
        j["crc32c"] = "ok";  // decode_v2 refuses a header whose CRC32C does not match
    }
    SslTlv ssl;
    if (!ssl_sub && t.type == tlv::ssl && parse_ssl(t, ssl).ok()) {
        j["client"] = ssl.client;
        j["client_flags"] = client_flags(ssl.client);
        j["verify"] = ssl.verify;
        j["sub_tlvs"] = json::array();
        for (const Tlv &sub : TlvReader(ssl.sub_tlvs)) {
            j["sub_tlvs"].push_back(tlv_json(sub, true));
        }
    }
    return j;
}

json to_json(const AnyHeader &h, std::size_t trailing) {
    json j;
    j["format"] = name(h.kind);
    switch (h.kind) {
        case Kind::v1: {
            bool v6 = h.v1.protocol == V1Protocol::tcp6;
            j["version"] = 1;
            j["protocol"] = h.v1.protocol == V1Protocol::unknown ? "UNKNOWN" : v6 ? "TCP6" : "TCP4";
            j["family"] = h.v1.protocol == V1Protocol::unknown ? "UNSPEC" : v6 ? "INET6" : "INET";
            j["transport"] = h.v1.protocol == V1Protocol::unknown ? "UNSPEC" : "STREAM";
            if (h.v1.protocol != V1Protocol::unknown) {
                j["source"] = endpoint(h.v1.source, v6);
                j["destination"] = endpoint(h.v1.destination, v6);
            }
            break;
        }
        case Kind::v2: {
            const V2Header &v = h.v2;
            j["version"] = 2;
            j["command"] = name(v.command);
            j["family"] = name(v.family);
            j["transport"] = name(v.transport);
            if (v.family == Family::inet || v.family == Family::inet6) {
                j["source"] = endpoint(v.source, v.family == Family::inet6);
                j["destination"] = endpoint(v.destination, v.family == Family::inet6);
            } else if (v.family == Family::unix_socket) {
                j["source"] = {{"path", std::string(v.source_path)}};
                j["destination"] = {{"path", std::string(v.destination_path)}};
            }
            if (!v.unspec_data.empty()) {
                j["skipped_bytes"] = v.unspec_data.size();  // UNSPEC address data, not TLVs
            }
            j["tlvs"] = json::array();
            for (const Tlv &t : TlvReader(v.tlvs)) {
                j["tlvs"].push_back(tlv_json(t, false));
            }
            break;
        }
        case Kind::spp: {
            bool v6 = needs_ipv6(h.spp.client, h.spp.proxy);
            j["family"] = v6 ? "INET6" : "INET";
            j["transport"] = "DGRAM";
            j["source"] = endpoint(h.spp.client, false);
            j["destination"] = endpoint(h.spp.proxy, false);
            break;
        }
    }
    j["header_length"] = h.length;
    j["trailing_bytes"] = trailing;
    return j;
}

// "  TLV 0x01 ALPN            h2" and, for SSL, its sub-TLVs one level deeper.
std::string tlv_text(const json &t, bool ssl_sub) {
    std::string what;
    if (t.contains("sub_tlvs")) {
        std::string flags;
        for (const auto &f : t["client_flags"]) {
            flags += (flags.empty() ? "" : ", ") + f.get<std::string>();
        }
        what = fmt::format("client 0x{:02x} ({}), verify {} ({})", t["client"].get<int>(),
                           flags.empty() ? "none" : flags, t["verify"].get<std::uint32_t>(),
                           t["verify"] == 0 ? "ok" : "not verified");
    } else if (t.contains("value")) {
        what = t["value"].get<std::string>();
    } else if (t["name"] == "NOOP" || t["length"] == 0) {
        what = fmt::format("{} bytes", t["length"].get<std::size_t>());
    } else {
        what = "0x" + t["value_hex"].get<std::string>();
    }
    if (t.contains("crc32c")) {
        what += " ok";
    }
    std::string out = fmt::format("  {} 0x{:02X} {:<15} {}\n", ssl_sub ? "  sub" : "TLV",
                                  t["type"].get<int>(), t["name"].get<std::string>(), what);
    if (t.contains("sub_tlvs")) {
        for (const auto &sub : t["sub_tlvs"]) {
            out += tlv_text(sub, true);
        }
    }
    return out;
}

std::string endpoint_text(const json &e) {
    if (e.contains("path")) {
        return e["path"].get<std::string>();
    }
    std::string a = e["address"].get<std::string>();
    if (a.find(':') != std::string::npos) {
        a = "[" + a + "]";
    }
    return fmt::format("{}:{}", a, e["port"].get<int>());
}

std::string to_text(const json &j) {
    std::string out;
    std::string format = j["format"].get<std::string>();
    if (format == "PROXY v1") {
        out = fmt::format("PROXY v1 {}\n", j["protocol"].get<std::string>());
    } else if (format == "PROXY v2") {
        out = fmt::format("PROXY v2 {} {} {}\n", j["command"].get<std::string>(),
                          j["family"].get<std::string>(), j["transport"].get<std::string>());
    } else {
        out = "SPP (Simple Proxy Protocol)\n";
    }
    if (j.contains("source")) {
        bool spp = format == "SPP";
        out += fmt::format("  {:<12} {}{}\n", "source", endpoint_text(j["source"]),
                           spp ? " (client)" : "");
        out += fmt::format("  {:<12} {}{}\n", "destination", endpoint_text(j["destination"]),
                           spp ? " (proxy: where the client sent to)" : "");
    } else if (j.value("command", "") != "LOCAL") {
        out += fmt::format("  {:<12} none: the receiver uses the connection's own\n", "addresses");
    }
    if (j.value("command", "") == "LOCAL") {
        out += fmt::format("  {:<12} LOCAL: the receiver uses the connection's own addresses\n",
                           "note");
    }
    if (j.contains("skipped_bytes")) {
        out += fmt::format("  {:<12} {} bytes of UNSPEC address data\n", "skipped",
                           j["skipped_bytes"].get<std::size_t>());
    }
    if (j.contains("tlvs")) {
        for (const auto &t : j["tlvs"]) {
            out += tlv_text(t, false);
        }
    }
    out += fmt::format("  {:<12} {} bytes\n", "header", j["header_length"].get<std::size_t>());
    if (std::size_t n = j["trailing_bytes"].get<std::size_t>(); n > 0) {
        out += fmt::format("  payload after header: {} bytes\n", n);
    }
    return out;
}

int fail(const std::string &why) {
    std::fprintf(stderr, "ppinject decode: %s\n", why.c_str());
    return 1;
}

}  // namespace

int decode(const DecodeOptions &opts) {
    std::vector<std::uint8_t> bytes = read_stdin();
    if (opts.hex) {
        std::string why;
        auto parsed = from_hex(bytes, why);
        if (!parsed) {
            return fail(why);
        }
        bytes = std::move(*parsed);
    }
    if (bytes.empty()) {
        return fail(opts.hex
                        ? "no input: stdin has no hex digits"
                        : "no input: stdin is empty (pipe a header in, or hex text with --hex)");
    }
    AnyHeader h;
    Status s = decode_any(bytes, h);
    if (s.error == Error::unknown_format) {
        return fail(describe(s));
    }
    if (s.error == Error::need_more) {
        std::string have =
            s.value ? fmt::format("{} of {} bytes", s.limit, s.value)
                    : fmt::format("{} bytes{}", s.limit, h.kind == Kind::v1 ? ", no CRLF yet" : "");
        return fail(fmt::format("incomplete header: need more bytes (incomplete {} header: {})",
                                name(h.kind), have));
    }
    if (!s.ok()) {
        return fail(fmt::format("malformed {} header: {}", name(h.kind), describe(s, false)));
    }
    json j = to_json(h, bytes.size() - h.length);
    std::string out = opts.json ? j.dump(2) + "\n" : to_text(j);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace ppinject::cli
