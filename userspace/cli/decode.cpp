// ppinject decode: one PROXY v1/v2 or SPP header from stdin, printed for people or as JSON.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "codec/proxy.hpp"

namespace ppinject::cli {
namespace {

using namespace ppinject::proxy;

// Hex text to bytes; whitespace, "0x" prefixes and ':' separators are ignored.
std::optional<std::vector<std::uint8_t>> from_hex(const std::string &text, std::string &why) {
    std::vector<std::uint8_t> out;
    int high = -1;
    for (std::size_t i = 0; i < text.size(); i++) {
        char c = text[i];
        if (std::isspace(static_cast<unsigned char>(c)) || c == ':') {
            continue;
        }
        if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X') &&
            high < 0) {
            i++;
            continue;
        }
        if (!std::isxdigit(static_cast<unsigned char>(c))) {
            why = fmt::format("invalid hex character '{}' at offset {}", c, i);
            return std::nullopt;
        }
        int v =
            std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
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

// Printable text as is, anything else as hex.
std::string text_or_hex(Bytes b) {
    for (auto c : b) {
        if (c < 0x20 || c > 0x7E) {
            return "0x" + hex(b);
        }
    }
    return std::string(b.begin(), b.end());
}

std::string tlv_name(std::uint8_t type, bool ssl_sub) {
    if (ssl_sub) {
        switch (type) {
            case tlv::ssl_version:
                return "SSL_VERSION";
            case tlv::ssl_cn:
                return "SSL_CN";
            case tlv::ssl_cipher:
                return "SSL_CIPHER";
            case tlv::ssl_sig_alg:
                return "SSL_SIG_ALG";
            case tlv::ssl_key_alg:
                return "SSL_KEY_ALG";
            case 0x26:
                return "SSL_GROUP";
            case 0x27:
                return "SSL_SIG_SCHEME";
            case 0x28:
                return "SSL_CLIENT_CERT";
        }
        return fmt::format("0x{:02X}", type);
    }
    switch (type) {
        case tlv::alpn:
            return "ALPN";
        case tlv::authority:
            return "AUTHORITY";
        case tlv::crc32c:
            return "CRC32C";
        case tlv::noop:
            return "NOOP";
        case tlv::unique_id:
            return "UNIQUE_ID";
        case tlv::ssl:
            return "SSL";
        case tlv::netns:
            return "NETNS";
    }
    if (type >= tlv::custom_min && type <= tlv::custom_max) {
        return fmt::format("CUSTOM_0x{:02X}", type);
    }
    return fmt::format("0x{:02X}", type);
}

nlohmann::json tlv_json(const Tlv &t, bool ssl_sub) {
    nlohmann::json j = {
        {"type", t.type}, {"name", tlv_name(t.type, ssl_sub)}, {"length", t.value.size()}};
    if (!ssl_sub && t.type == tlv::ssl) {
        SslTlv ssl;
        parse_ssl(t, ssl);  // validated by decode_v2
        j["client"] = ssl.client;
        j["verify"] = ssl.verify;
        j["sub_tlvs"] = nlohmann::json::array();
        TlvReader r(ssl.sub_tlvs);
        Tlv sub;
        while (r.next(sub)) {
            j["sub_tlvs"].push_back(tlv_json(sub, true));
        }
    } else if (!ssl_sub && (t.type == tlv::crc32c || t.type == tlv::noop)) {
        j["value_hex"] = hex(t.value);
    } else if (!ssl_sub && t.type == tlv::unique_id) {
        j["value_hex"] = hex(t.value);
    } else {
        j["value"] = text_or_hex(t.value);
    }
    return j;
}

std::string tlv_text(const nlohmann::json &t, const std::string &indent) {
    std::string out = fmt::format("{}{:<12} ", indent, t["name"].get<std::string>());
    if (t.contains("sub_tlvs")) {
        out += fmt::format("client 0x{:02x}, verify {}\n", t["client"].get<int>(),
                           t["verify"].get<std::uint32_t>());
        for (const auto &s : t["sub_tlvs"]) {
            out += tlv_text(s, indent + "  ");
        }
        return out;
    }
    if (t["name"] == "CRC32C") {
        return out + t["value_hex"].get<std::string>() + " (verified)\n";
    }
    if (t.contains("value_hex")) {
        return out + "0x" + t["value_hex"].get<std::string>() + "\n";
    }
    return out + t["value"].get<std::string>() + "\n";
}

nlohmann::json endpoint_json(const Endpoint &e) {
    return {{"address", e.addr.to_string()}, {"port", e.port}};
}

nlohmann::json to_json(const AnyHeader &h) {
    nlohmann::json j;
    j["header_length"] = h.length;
    switch (h.kind) {
        case Kind::v1:
            j["version"] = 1;
            j["protocol"] = h.v1.protocol == V1Protocol::tcp4   ? "TCP4"
                            : h.v1.protocol == V1Protocol::tcp6 ? "TCP6"
                                                                : "UNKNOWN";
            if (h.v1.protocol != V1Protocol::unknown) {
                j["source"] = endpoint_json(h.v1.source);
                j["destination"] = endpoint_json(h.v1.destination);
            }
            break;
        case Kind::v2: {
            static const char *families[] = {"UNSPEC", "INET", "INET6", "UNIX"};
            static const char *transports[] = {"UNSPEC", "STREAM", "DGRAM"};
            j["version"] = 2;
            j["command"] = h.v2.command == Command::proxy ? "PROXY" : "LOCAL";
            j["family"] = families[static_cast<int>(h.v2.family)];
            j["transport"] = transports[static_cast<int>(h.v2.transport)];
            if (h.v2.family == Family::inet || h.v2.family == Family::inet6) {
                j["source"] = endpoint_json(h.v2.source);
                j["destination"] = endpoint_json(h.v2.destination);
            } else if (h.v2.family == Family::unix_socket) {
                j["source"] = {{"path", std::string(h.v2.source_path)}};
                j["destination"] = {{"path", std::string(h.v2.destination_path)}};
            }
            j["tlvs"] = nlohmann::json::array();
            TlvReader r(h.v2.tlvs);
            Tlv t;
            while (r.next(t)) {
                j["tlvs"].push_back(tlv_json(t, false));
            }
            break;
        }
        case Kind::spp:
            j["version"] = "spp";
            j["source"] = endpoint_json(h.spp.client);
            j["destination"] = endpoint_json(h.spp.proxy);
            break;
    }
    return j;
}

std::string to_text(const nlohmann::json &j) {
    std::string out;
    if (j["version"] == 1) {
        out = fmt::format("PROXY v1 {}\n", j["protocol"].get<std::string>());
    } else if (j["version"] == 2) {
        out = fmt::format("PROXY v2 {} {} {}\n", j["command"].get<std::string>(),
                          j["family"].get<std::string>(), j["transport"].get<std::string>());
    } else {
        out = "SPP (Simple Proxy Protocol)\n";
    }
    for (const char *side : {"source", "destination"}) {
        if (!j.contains(side)) {
            continue;
        }
        const auto &e = j[side];
        std::string where;
        if (e.contains("path")) {
            where = e["path"].get<std::string>();
        } else {
            std::string a = e["address"].get<std::string>();
            where = (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" +
                    std::to_string(e["port"].get<int>());
        }
        out += fmt::format("  {:<12} {}\n", side, where);
    }
    if (j.contains("tlvs")) {
        for (const auto &t : j["tlvs"]) {
            out += tlv_text(t, "  ");
        }
    }
    out += fmt::format("  {:<12} {} bytes\n", "header", j["header_length"].get<std::size_t>());
    if (j["payload_length"].get<std::size_t>() > 0) {
        out += fmt::format("  {:<12} {} bytes after the header\n", "payload",
                           j["payload_length"].get<std::size_t>());
    }
    return out;
}

}  // namespace

int decode(const DecodeOptions &opts) {
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::vector<std::uint8_t> bytes(input.begin(), input.end());
    if (opts.hex) {
        std::string why;
        auto parsed = from_hex(input, why);
        if (!parsed) {
            std::fprintf(stderr, "ppinject decode: %s\n", why.c_str());
            return 1;
        }
        bytes = std::move(*parsed);
    }
    if (bytes.empty()) {
        std::fprintf(stderr,
                     "ppinject decode: no input on stdin (pipe a header in, raw or with --hex)\n");
        return 1;
    }
    AnyHeader h;
    Error e = decode_any(bytes, h);
    if (e != Error::ok) {
        static const char *kinds[] = {"PROXY v1", "PROXY v2", "SPP"};
        std::string what = e == Error::unknown_format ? std::string(describe(e))
                           : e == Error::need_more
                               ? fmt::format("incomplete {} header: need more bytes (have {})",
                                             kinds[static_cast<int>(h.kind)], bytes.size())
                               : fmt::format("malformed {} header: {}",
                                             kinds[static_cast<int>(h.kind)], describe(e));
        std::fprintf(stderr, "ppinject decode: %s\n", what.c_str());
        return 1;
    }
    nlohmann::json j = to_json(h);
    j["payload_length"] = bytes.size() - h.length;
    std::cout << (opts.json ? j.dump(2) + "\n" : to_text(j));
    return 0;
}

}  // namespace ppinject::cli
