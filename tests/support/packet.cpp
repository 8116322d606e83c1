#include "support/packet.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <stdexcept>

namespace pptest {
namespace {

constexpr std::uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86DD;
constexpr std::uint16_t kTpid8021Q = 0x8100, kTpid8021AD = 0x88A8;
constexpr std::uint8_t kUdp = 17, kTcp = 6;
constexpr std::uint8_t kHopByHop = 0, kRouting = 43, kFragmentHdr = 44, kDestOpts = 60;

void put16(Bytes &b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v & 0xFF));
}
void set16(Bytes &b, std::size_t at, std::uint16_t v) {
    b.at(at) = static_cast<std::uint8_t>(v >> 8);
    b.at(at + 1) = static_cast<std::uint8_t>(v & 0xFF);
}
std::uint16_t get16(const Bytes &b, std::size_t at) {
    return static_cast<std::uint16_t>(b.at(at) << 8 | b.at(at + 1));
}
void append(Bytes &b, const std::uint8_t *p, std::size_t n) {
    b.insert(b.end(), p, p + n);
}

// Final destination for the pseudo-header of an IPv6 packet: the routing header's last
// segment when one is still to be visited, else the destination address.
std::array<std::uint8_t, 16> final_destination(const std::uint8_t *daddr,
                                               const std::uint8_t *routing, std::size_t len) {
    std::array<std::uint8_t, 16> out{};
    std::copy(daddr, daddr + 16, out.begin());
    if (routing == nullptr || len < 8 || routing[3] == 0) {
        return out;
    }
    const std::uint8_t type = routing[2];
    if (type == 4 && len >= 24) {  // SRH: Segment List[0] is the final segment
        std::copy(routing + 8, routing + 24, out.begin());
    } else if ((type == 0 || type == 2) && len >= 24) {  // addresses after 4 reserved bytes
        std::size_t n = (len - 8) / 16;
        std::copy(routing + 8 + 16 * (n - 1), routing + 8 + 16 * n, out.begin());
    }
    return out;
}

// The checksum field for `datagram` (a UDP or TCP header with checksum 0, then payload)
// whose pseudo-header has these addresses and this length.
std::uint16_t l4_checksum(std::uint8_t protocol, const std::uint8_t *src, const std::uint8_t *dst,
                          std::size_t alen, std::uint16_t l4_len, const Bytes &datagram) {
    // RFC 768 / RFC 793 / RFC 8200 8.1 pseudo-header: source, destination, zero + protocol
    // (IPv4) or 32-bit upper-layer length + 3 zero bytes + next header (IPv6). Either way
    // the one's-complement sum is src + dst + protocol + length.
    std::uint32_t acc = ones_complement_sum(src, alen);
    acc = ones_complement_sum(dst, alen, acc);
    acc += protocol;
    acc += l4_len;
    std::uint16_t sum = ones_complement_sum(datagram.data(), datagram.size(), acc);
    std::uint16_t c = static_cast<std::uint16_t>(~sum);
    return c == 0 ? 0xFFFF
                  : c;  // RFC 768: a computed zero is sent as all ones (the same sum for TCP)
}

}  // namespace

std::uint16_t tcp_checksum(const Addr &src, const Addr &dst, const Bytes &segment) {
    return l4_checksum(kTcp, src.bytes.data(), dst.bytes.data(), src.size(),
                       static_cast<std::uint16_t>(segment.size()), segment);
}

// --- Addr -----------------------------------------------------------------------------

Addr Addr::parse(std::string_view text) {
    Addr a;
    std::string s(text);
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        return a;
    }
    a.v6 = true;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        return a;
    }
    throw std::invalid_argument("not an IP address: " + s);
}

std::array<std::uint8_t, 16> Addr::mapped() const {
    if (v6) {
        return bytes;
    }
    std::array<std::uint8_t, 16> m{};
    m[10] = 0xFF;
    m[11] = 0xFF;
    std::copy(bytes.begin(), bytes.begin() + 4, m.begin() + 12);
    return m;
}

std::string Addr::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
    return buf;
}

// --- Packet ---------------------------------------------------------------------------

Packet &Packet::macs(std::array<std::uint8_t, 6> src, std::array<std::uint8_t, 6> dst) {
    src_mac_ = src;
    dst_mac_ = dst;
    return *this;
}
Packet &Packet::vlan(std::uint16_t tpid, std::uint16_t vid) {
    vlans_.push_back(VlanTag{tpid, vid});
    return *this;
}
Packet &Packet::ip(std::string_view src, std::string_view dst) {
    src_ = Addr::parse(src);
    dst_ = Addr::parse(dst);
    if (src_.v6 != dst_.v6) {
        throw std::invalid_argument("mixed address families");
    }
    return *this;
}
Packet &Packet::ipv4_options(Bytes options) {
    while (options.size() % 4 != 0) {
        options.push_back(0);  // End of Option List
    }
    if (options.size() > 40) {
        throw std::invalid_argument("IPv4 options longer than 40 bytes");
    }
    ipv4_options_ = std::move(options);
    return *this;
}
Packet &Packet::ipv6_ext(std::uint8_t type, Bytes data) {
    ext_.push_back(Ipv6Ext{type, std::move(data)});
    return *this;
}
Packet &Packet::fragment(Fragment f) {
    if (f.offset % 8 != 0) {
        throw std::invalid_argument("fragment offset not a multiple of 8");
    }
    fragment_ = f;
    return *this;
}
Packet &Packet::udp(std::uint16_t sport, std::uint16_t dport) {
    protocol_ = kUdp;
    sport_ = sport;
    dport_ = dport;
    return *this;
}
Packet &Packet::tcp(std::uint16_t sport, std::uint16_t dport, Tcp fields) {
    while (fields.options.size() % 4 != 0) {
        fields.options.push_back(0);  // End of Option List
    }
    if (fields.options.size() > 40) {
        throw std::invalid_argument("TCP options longer than 40 bytes");
    }
    protocol_ = kTcp;
    sport_ = sport;
    dport_ = dport;
    tcp_ = std::move(fields);
    return *this;
}
Packet &Packet::payload(Bytes p) {
    payload_ = std::move(p);
    return *this;
}
Packet &Packet::no_udp_checksum() {
    no_udp_checksum_ = true;
    return *this;
}
Packet &Packet::udp_length(std::uint16_t len) {
    udp_length_ = len;
    return *this;
}
Packet &Packet::ip_length(std::uint16_t len) {
    ip_length_ = len;
    return *this;
}
Packet &Packet::l4(std::uint8_t protocol, Bytes l4) {
    protocol_ = protocol;
    raw_l4_ = std::move(l4);
    return *this;
}
Packet &Packet::raw(std::uint16_t ethertype, Bytes l3) {
    raw_ethertype_ = ethertype;
    raw_l3_ = std::move(l3);
    return *this;
}
Packet &Packet::padding(std::size_t n) {
    padding_ = n;
    return *this;
}

// The extension headers as bytes, each with its next-header byte; `last_next` after the
// last one. Fragment header last when fragmenting.
static Bytes ext_chain(const std::vector<Ipv6Ext> &ext, const std::optional<Fragment> &frag,
                       std::uint8_t last_next, std::uint8_t *first_next) {
    std::vector<std::uint8_t> types;
    for (const auto &e : ext) {
        types.push_back(e.type);
    }
    if (frag) {
        types.push_back(kFragmentHdr);
    }
    *first_next = types.empty() ? last_next : types[0];
    Bytes out;
    for (std::size_t i = 0; i < ext.size(); i++) {
        std::uint8_t next = i + 1 < types.size() ? types[i + 1] : last_next;
        Bytes h = {next, 0};
        h.insert(h.end(), ext[i].data.begin(), ext[i].data.end());
        while (h.size() % 8 != 0) {
            h.push_back(0);
        }
        if (h.size() / 8 - 1 > 255) {
            throw std::invalid_argument("extension header too long");
        }
        h[1] = static_cast<std::uint8_t>(h.size() / 8 - 1);
        out.insert(out.end(), h.begin(), h.end());
    }
    if (frag) {
        // Next header, reserved, offset (13 bits, 8-byte units) | res (2) | M, id (32).
        out.push_back(last_next);
        out.push_back(0);
        put16(out, static_cast<std::uint16_t>((frag->offset / 8) << 3 | (frag->more ? 1 : 0)));
        put16(out, static_cast<std::uint16_t>(frag->id >> 16));
        put16(out, static_cast<std::uint16_t>(frag->id & 0xFFFF));
    }
    return out;
}

Bytes Packet::l4_datagram() const {
    if ((protocol_ != kUdp && protocol_ != kTcp) || !raw_l4_.empty()) {
        return raw_l4_;
    }
    Bytes d;
    std::uint16_t len = 0;
    std::size_t csum_at = 0;
    put16(d, sport_);
    put16(d, dport_);
    if (protocol_ == kUdp) {
        len = udp_length_.value_or(static_cast<std::uint16_t>(8 + payload_.size()));
        put16(d, len);
        csum_at = d.size();
        put16(d, 0);
    } else {
        // Sequence and acknowledgement numbers, data offset (words) | reserved, flags,
        // window, checksum, urgent pointer, options.
        put16(d, static_cast<std::uint16_t>(tcp_.seq >> 16));
        put16(d, static_cast<std::uint16_t>(tcp_.seq & 0xFFFF));
        put16(d, static_cast<std::uint16_t>(tcp_.ack >> 16));
        put16(d, static_cast<std::uint16_t>(tcp_.ack & 0xFFFF));
        d.push_back(static_cast<std::uint8_t>((20 + tcp_.options.size()) / 4 << 4));
        d.push_back(tcp_.flags);
        put16(d, tcp_.window);
        csum_at = d.size();
        put16(d, 0);
        put16(d, tcp_.urgent);
        d.insert(d.end(), tcp_.options.begin(), tcp_.options.end());
        len = static_cast<std::uint16_t>(d.size() + payload_.size());
    }
    d.insert(d.end(), payload_.begin(), payload_.end());
    if (src_.v6 || protocol_ == kTcp || !no_udp_checksum_) {
        std::array<std::uint8_t, 16> dst = dst_.bytes;
        if (src_.v6) {
            for (const auto &e : ext_) {
                if (e.type == kRouting) {
                    Bytes h = {0, 0};
                    h.insert(h.end(), e.data.begin(), e.data.end());
                    dst = final_destination(dst_.bytes.data(), h.data(), h.size());
                }
            }
        }
        set16(d, csum_at,
              l4_checksum(protocol_, src_.bytes.data(), dst.data(), src_.size(), len, d));
    }
    return d;
}

std::size_t Packet::l4_offset() const {
    std::size_t off = 14 + 4 * vlans_.size();
    if (!src_.v6) {
        return off + 20 + ipv4_options_.size();
    }
    std::uint8_t first = 0;
    return off + 40 + ext_chain(ext_, fragment_, protocol_, &first).size();
}

Bytes Packet::build() const {
    Bytes f(dst_mac_.begin(), dst_mac_.end());
    f.insert(f.end(), src_mac_.begin(), src_mac_.end());
    for (const auto &t : vlans_) {
        put16(f, t.tpid);
        put16(f, t.tci);
    }
    if (raw_ethertype_) {
        put16(f, *raw_ethertype_);
        f.insert(f.end(), raw_l3_.begin(), raw_l3_.end());
        f.insert(f.end(), padding_, 0xEE);
        return f;
    }
    Bytes l4 = l4_datagram();
    if (fragment_) {
        std::size_t from = std::min(fragment_->offset, l4.size());
        std::size_t n = std::min(fragment_->length.value_or(l4.size()), l4.size() - from);
        l4 = Bytes(l4.begin() + static_cast<long>(from), l4.begin() + static_cast<long>(from + n));
    }
    if (!src_.v6) {
        put16(f, kEthIpv4);
        std::size_t l3 = f.size();
        std::size_t ihl = 20 + ipv4_options_.size();
        f.push_back(static_cast<std::uint8_t>(0x40 | ihl / 4));  // version, IHL
        f.push_back(0);                                          // DSCP/ECN
        put16(f, ip_length_.value_or(static_cast<std::uint16_t>(ihl + l4.size())));
        put16(f, fragment_ ? static_cast<std::uint16_t>(fragment_->id) : 0x4242);
        std::uint16_t frag = 0;
        if (fragment_) {
            frag = static_cast<std::uint16_t>((fragment_->more ? 0x2000 : 0) |
                                              (fragment_->offset / 8));
        }
        put16(f, frag);
        f.push_back(64);  // TTL
        f.push_back(protocol_);
        put16(f, 0);  // header checksum, below
        append(f, src_.bytes.data(), 4);
        append(f, dst_.bytes.data(), 4);
        f.insert(f.end(), ipv4_options_.begin(), ipv4_options_.end());
        set16(f, l3 + 10, static_cast<std::uint16_t>(~ones_complement_sum(&f[l3], ihl)));
    } else {
        put16(f, kEthIpv6);
        std::uint8_t first_next = 0;
        Bytes chain = ext_chain(ext_, fragment_, protocol_, &first_next);
        put16(f, 0x6000);  // version 6, traffic class, flow label
        put16(f, 0x0000);
        put16(f, ip_length_.value_or(static_cast<std::uint16_t>(chain.size() + l4.size())));
        f.push_back(first_next);
        f.push_back(64);  // hop limit
        append(f, src_.bytes.data(), 16);
        append(f, dst_.bytes.data(), 16);
        f.insert(f.end(), chain.begin(), chain.end());
    }
    f.insert(f.end(), l4.begin(), l4.end());
    f.insert(f.end(), padding_, 0xEE);
    return f;
}

Bytes truncated(const Bytes &frame, std::size_t n) {
    return Bytes(frame.begin(), frame.begin() + static_cast<long>(std::min(n, frame.size())));
}

Bytes concat(const Bytes &a, const Bytes &b) {
    Bytes out = a;
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

Bytes pattern(std::size_t n, std::uint8_t seed) {
    Bytes out(n);
    for (std::size_t i = 0; i < n; i++) {
        // Starts with 'p' (never 0x0D or 0x56), varies with position so a shift shows.
        out[i] = static_cast<std::uint8_t>(i == 0 ? 'p' : (i * 31 + i / 251 + seed) & 0xFF);
    }
    return out;
}

// --- Checking -------------------------------------------------------------------------

std::uint16_t ones_complement_sum(const std::uint8_t *data, std::size_t len,
                                  std::uint32_t initial) {
    // RFC 1071: add 16-bit big-endian words in a wider accumulator, then fold the carries
    // back in (end-around carry).
    std::uint64_t acc = initial;
    for (std::size_t i = 0; i + 1 < len; i += 2) {
        acc += static_cast<std::uint64_t>(data[i]) << 8 | data[i + 1];
    }
    if (len % 2 == 1) {
        acc += static_cast<std::uint64_t>(data[len - 1]) << 8;
    }
    while (acc > 0xFFFF) {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    return static_cast<std::uint16_t>(acc);
}

namespace {

// The TCP part of check_frame(): the segment [l4, ip_end) of `frame`, its pseudo-header from
// src and dst (alen bytes each).
FrameCheck check_tcp(const Bytes &frame, FrameCheck r, const std::uint8_t *src,
                     const std::uint8_t *dst, std::size_t alen, std::size_t l4,
                     std::size_t ip_end) {
    auto fail = [&r](std::string why) {
        r.error = std::move(why);
        return r;
    };
    if (l4 + 20 > frame.size() || l4 + 20 > ip_end) {
        return fail("truncated TCP header");
    }
    r.parsed = true;
    r.protocol = kTcp;
    r.l4_offset = l4;
    r.tcp_header_length = (frame[l4 + 12] >> 4) * 4u;
    if (ip_end > frame.size()) {
        return fail("IP packet longer than the frame");
    }
    r.trailing = frame.size() - ip_end;
    r.lengths_ok = r.tcp_header_length >= 20 && l4 + r.tcp_header_length <= ip_end;
    if (!r.lengths_ok) {
        return fail("TCP data offset " + std::to_string(r.tcp_header_length) +
                    " outside the IP payload of " + std::to_string(ip_end - l4));
    }
    r.payload.assign(frame.begin() + static_cast<long>(l4 + r.tcp_header_length),
                     frame.begin() + static_cast<long>(ip_end));
    // RFC 793: the sum over pseudo-header (src, dst, zero + protocol, TCP length) and the
    // whole segment, checksum field included, is all ones.
    std::uint32_t acc = ones_complement_sum(src, alen);
    acc = ones_complement_sum(dst, alen, acc);
    acc += kTcp;
    acc += static_cast<std::uint32_t>(ip_end - l4);
    r.l4_checksum_ok = ones_complement_sum(&frame[l4], ip_end - l4, acc) == 0xFFFF;
    if (!r.ip_checksum_ok) {
        return fail("bad IPv4 header checksum");
    }
    if (!r.l4_checksum_ok) {
        return fail("bad TCP checksum");
    }
    return r;
}

}  // namespace

FrameCheck check_frame(const Bytes &frame) {
    FrameCheck r;
    auto fail = [&r](std::string why) {
        r.error = std::move(why);
        return r;
    };
    std::size_t at = 12;
    if (frame.size() < 14) {
        return fail("shorter than an Ethernet header");
    }
    std::uint16_t type = get16(frame, at);
    while (type == kTpid8021Q || type == kTpid8021AD) {
        at += 4;
        if (at + 2 > frame.size()) {
            return fail("truncated VLAN tag");
        }
        type = get16(frame, at);
    }
    const std::size_t l3 = at + 2;
    r.l3_offset = l3;
    std::size_t l4 = 0, ip_end = 0;
    std::uint8_t proto = 0;
    const std::uint8_t *src = nullptr;
    std::array<std::uint8_t, 16> dst{};
    std::size_t alen = 4;

    if (type == kEthIpv4) {
        if (l3 + 20 > frame.size()) {
            return fail("truncated IPv4 header");
        }
        if (frame[l3] >> 4 != 4) {
            return fail("IPv4 version is not 4");
        }
        std::size_t ihl = (frame[l3] & 0x0F) * 4u;
        if (ihl < 20 || l3 + ihl > frame.size()) {
            return fail("bad or truncated IHL");
        }
        // RFC 791: the one's-complement sum of the header, checksum included, is all ones.
        r.ip_checksum_ok = ones_complement_sum(&frame[l3], ihl) == 0xFFFF;
        r.ip_length = get16(frame, l3 + 2);
        ip_end = l3 + r.ip_length;
        std::uint16_t frag = get16(frame, l3 + 6);
        if (frag & 0x1FFF) {
            return fail("IPv4 fragment with offset != 0");
        }
        if (frag & 0x2000) {
            return fail("IPv4 first fragment (MF)");
        }
        proto = frame[l3 + 9];
        src = &frame[l3 + 12];
        std::copy(&frame[l3 + 16], &frame[l3 + 20], dst.begin());
        l4 = l3 + ihl;
        if (r.ip_length < ihl) {
            return fail("IPv4 total length shorter than the header");
        }
    } else if (type == kEthIpv6) {
        if (l3 + 40 > frame.size()) {
            return fail("truncated IPv6 header");
        }
        if (frame[l3] >> 4 != 6) {
            return fail("IPv6 version is not 6");
        }
        r.ipv6 = true;
        r.ip_checksum_ok = true;
        alen = 16;
        r.ip_length = 40 + get16(frame, l3 + 4);
        ip_end = l3 + r.ip_length;
        proto = frame[l3 + 6];
        src = &frame[l3 + 8];
        std::copy(&frame[l3 + 24], &frame[l3 + 40], dst.begin());
        l4 = l3 + 40;
        const std::uint8_t *routing = nullptr;
        std::size_t routing_len = 0;
        while (proto == kHopByHop || proto == kRouting || proto == kDestOpts ||
               proto == kFragmentHdr) {
            if (l4 + 8 > frame.size()) {
                return fail("truncated IPv6 extension header");
            }
            std::size_t len = proto == kFragmentHdr ? 8 : (frame[l4 + 1] + 1u) * 8;
            if (l4 + len > frame.size()) {
                return fail("truncated IPv6 extension header");
            }
            if (proto == kFragmentHdr) {
                std::uint16_t fo = get16(frame, l4 + 2);
                if (fo & 0xFFF8) {
                    return fail("IPv6 fragment with offset != 0");
                }
                if (fo & 1) {
                    return fail("IPv6 first fragment (M)");
                }
            } else if (proto == kRouting) {
                routing = &frame[l4];
                routing_len = len;
            }
            proto = frame[l4];
            l4 += len;
        }
        dst = final_destination(&frame[l3 + 24], routing, routing_len);
    } else {
        return fail("not IP");
    }
    if (proto == kTcp) {
        return check_tcp(frame, r, src, dst.data(), alen, l4, ip_end);
    }
    if (proto != kUdp) {
        return fail("not UDP or TCP");
    }
    if (l4 + 8 > frame.size() || l4 + 8 > ip_end) {
        return fail("truncated UDP header");
    }
    r.parsed = true;
    r.protocol = kUdp;
    r.l4_offset = l4;
    r.udp_length = get16(frame, l4 + 4);
    r.udp_checksum = get16(frame, l4 + 6);
    if (ip_end > frame.size()) {
        return fail("IP packet longer than the frame");
    }
    r.trailing = frame.size() - ip_end;
    r.lengths_ok = r.udp_length == ip_end - l4;
    if (!r.lengths_ok) {
        return fail("UDP length " + std::to_string(r.udp_length) + " != IP payload " +
                    std::to_string(ip_end - l4));
    }
    r.payload.assign(frame.begin() + static_cast<long>(l4 + 8),
                     frame.begin() + static_cast<long>(ip_end));
    if (r.udp_checksum == 0) {
        // RFC 768: IPv4 "no checksum"; RFC 8200 8.1: never valid for IPv6.
        r.udp_checksum_present = false;
        r.l4_checksum_ok = !r.ipv6;
    } else {
        r.udp_checksum_present = true;
        std::uint32_t acc = ones_complement_sum(src, alen);
        acc = ones_complement_sum(dst.data(), alen, acc);
        acc += kUdp;
        acc += static_cast<std::uint32_t>(r.udp_length);
        r.l4_checksum_ok = ones_complement_sum(&frame[l4], r.udp_length, acc) == 0xFFFF;
    }
    if (!r.ip_checksum_ok) {
        return fail("bad IPv4 header checksum");
    }
    if (!r.l4_checksum_ok) {
        return fail(r.udp_checksum == 0 ? "IPv6 UDP checksum 0" : "bad UDP checksum");
    }
    return r;
}

Bytes proxy_v2_header(const Addr &src, std::uint16_t sport, const Addr &dst, std::uint16_t dport,
                      Transport transport) {
    if (src.v6 != dst.v6) {
        throw std::invalid_argument("PROXY v2: addresses of one family");
    }
    // Signature, version 2 | PROXY, family INET (1) or INET6 (2) << 4 | STREAM (1) or
    // DGRAM (2), length of the address block (12 or 36), source address, destination
    // address, source port, destination port, all in network byte order.
    Bytes h = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    h.push_back(0x21);
    h.push_back(static_cast<std::uint8_t>((src.v6 ? 0x20 : 0x10) |
                                          (transport == Transport::stream ? 0x01 : 0x02)));
    put16(h, src.v6 ? 36 : 12);
    append(h, src.bytes.data(), src.size());
    append(h, dst.bytes.data(), dst.size());
    put16(h, sport);
    put16(h, dport);
    return h;
}

Bytes proxy_v1_header(const Addr &src, std::uint16_t sport, const Addr &dst, std::uint16_t dport) {
    if (src.v6 != dst.v6) {
        throw std::invalid_argument("PROXY v1: addresses of one family");
    }
    auto text = [](const Addr &a) {
        char buf[64];
        const std::uint8_t *b = a.bytes.data();
        if (!a.v6) {
            std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
            return std::string(buf);
        }
        std::string out;
        for (int i = 0; i < 16; i += 2) {
            std::snprintf(buf, sizeof buf, "%s%x", i ? ":" : "", b[i] << 8 | b[i + 1]);
            out += buf;
        }
        return out;
    };
    std::string line = std::string("PROXY ") + (src.v6 ? "TCP6 " : "TCP4 ") + text(src) + " " +
                       text(dst) + " " + std::to_string(sport) + " " + std::to_string(dport) +
                       "\r\n";
    return Bytes(line.begin(), line.end());
}

Bytes spp_header(const Addr &client, std::uint16_t client_port, const Addr &proxy,
                 std::uint16_t proxy_port) {
    // Magic 0x56EC, client address, proxy address (16 bytes each, IPv4-mapped), client
    // port, proxy port.
    Bytes h = {0x56, 0xEC};
    auto c = client.mapped(), p = proxy.mapped();
    h.insert(h.end(), c.begin(), c.end());
    h.insert(h.end(), p.begin(), p.end());
    put16(h, client_port);
    put16(h, proxy_port);
    return h;
}

std::string hex(const Bytes &b) {
    std::string out;
    char buf[32];
    for (std::size_t i = 0; i < b.size(); i++) {
        if (i % 16 == 0) {
            std::snprintf(buf, sizeof buf, "%s%04zx:", i ? "\n" : "", i);
            out += buf;
        }
        std::snprintf(buf, sizeof buf, " %02x", b[i]);
        out += buf;
    }
    return out;
}

std::string describe_difference(const Bytes &expected, const Bytes &got) {
    if (expected == got) {
        return "identical";
    }
    std::size_t i = 0;
    while (i < expected.size() && i < got.size() && expected[i] == got[i]) {
        i++;
    }
    std::string s = "expected " + std::to_string(expected.size()) + " bytes, got " +
                    std::to_string(got.size()) + "; first difference at offset " +
                    std::to_string(i);
    char buf[64];
    if (i < expected.size() && i < got.size()) {
        std::snprintf(buf, sizeof buf, " (expected %02x, got %02x)", expected[i], got[i]);
        s += buf;
    }
    if (expected.size() + got.size() <= 512) {
        s += "\nexpected:\n" + hex(expected) + "\ngot:\n" + hex(got);
    }
    return s;
}

}  // namespace pptest
