#include "config/header.hpp"

namespace ppinject {
namespace {

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t *>(s.data()), s.size()};
}

// A client's SNI goes into the header only when it looks like a DNS host name: letters,
// digits, '-', '.' (RFC 6066 section 3 asks for exactly that); anything else is left out.
bool is_host_name(std::string_view s) {
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

}  // namespace

proxy::Error build_header(const Service &svc, const ConnectionFacts &facts,
                          std::span<std::uint8_t> out, std::size_t &written) {
    if (svc.header == HeaderMode::v1) {
        return proxy::encode_v1(out, facts.client, facts.dialled, written);
    }
    const TlvConfig &t = svc.tlv;
    proxy::V2Writer w(out);
    w.begin(proxy::Command::proxy, proxy::Transport::stream, facts.client, facts.dialled);
    if (t.unique_id) {
        w.add_unique_id(facts.unique_id);
    }
    if (t.authority_from_sni) {
        if (!facts.sni.empty() && facts.sni.size() <= kMaxSni && is_host_name(facts.sni)) {
            w.add_authority(facts.sni);
        }
    } else if (!t.authority.empty()) {
        w.add_authority(t.authority);
    }
    if (!t.netns.empty()) {
        w.add_netns(t.netns);
    }
    for (const auto &[type, value] : t.custom) {
        w.add_custom(type, bytes(value));
    }
    // A validated config has no TLV the writer refuses (types and lengths are checked
    // there); running out of buffer is sticky in the writer, and finish() reports it.
    return w.finish(t.crc32c, written);
}

}  // namespace ppinject
