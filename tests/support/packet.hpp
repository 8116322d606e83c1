// Ethernet frames for packet-level tests, in the spirit of katran's PacketBuilder: an
// Ethernet header, optional 802.1Q/802.1ad tags, IPv4 (options of any length) or IPv6
// (extension headers), UDP or TCP with a payload, correct IPv4 header and UDP/TCP
// checksums, fragments and trailing Ethernet padding. Describe a packet once, copy the description,
// change the payload, and build both: lengths and checksums are recomputed every time.
//
// Also here, and deliberately independent of the BPF code and of the ppinject codec:
//   - check_frame(): parses a frame and verifies its IPv4 header checksum and its UDP or
//     TCP checksum with the pseudo-header (RFC 768, RFC 793, RFC 791, RFC 8200 section
//     8.1), written from the RFCs with its own one's-complement arithmetic (RFC 1071);
//   - proxy_v1_header(), proxy_v2_header() and spp_header(): the headers ppinject must
//     insert, byte by byte from the PROXY protocol and SPP specifications.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pptest {

using Bytes = std::vector<std::uint8_t>;

// An IPv4 or IPv6 address parsed from text (inet_pton; throws std::invalid_argument).
struct Addr {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};  // IPv4: the first 4 bytes

    static Addr parse(std::string_view text);
    std::size_t size() const { return v6 ? 16 : 4; }
    // 16 bytes: IPv6 as is, IPv4 as ::ffff:a.b.c.d.
    std::array<std::uint8_t, 16> mapped() const;
    std::string to_string() const;
};

// 802.1Q (0x8100) or 802.1ad (0x88A8) tag.
struct VlanTag {
    std::uint16_t tpid = 0x8100;
    std::uint16_t tci = 0;
};

// One IPv6 extension header before the upper layer (the fragment header is separate: see
// Packet::fragment). `data` is what follows the next-header and length bytes; the builder
// pads it with zeros (Pad1 options) to a multiple of 8 bytes and fills in both bytes. For a
// routing header data[0] is the routing type and data[1] segments left; with segments left
// > 0 the UDP pseudo-header uses the final destination (RFC 8200 8.1): segment list[0] of
// a segment routing header (type 4, list at data[6]), the last address of types 0 and 2.
struct Ipv6Ext {
    std::uint8_t type = 0;  // IPPROTO_HOPOPTS, IPPROTO_DSTOPTS or IPPROTO_ROUTING
    Bytes data;
};

// A fragment of the UDP datagram: bytes [offset, offset + length) of UDP header + payload
// (offset a multiple of 8). IPv4: MF and fragment offset; IPv6: a fragment header last in
// the extension chain. The UDP header (when inside the fragment) describes the whole
// datagram, checksum included.
struct Fragment {
    std::size_t offset = 0;
    std::optional<std::size_t> length;  // nullopt: to the end of the datagram
    bool more = false;
    std::uint32_t id = 0x1234;
};

// The TCP header's fields past the ports (RFC 793, RFC 9293 section 3.1). Data offset and
// checksum are computed; `options` is padded with End of Option List to whole words.
struct Tcp {
    // Byte 13 of the header.
    static constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10,
                                  kUrg = 0x20;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t flags = kAck;
    std::uint16_t window = 65535;
    std::uint16_t urgent = 0;
    Bytes options;  // at most 40 bytes
};

class Packet {
  public:
    static constexpr std::array<std::uint8_t, 6> kDstMac = {0x02, 0, 0, 0, 0, 0x01};
    static constexpr std::array<std::uint8_t, 6> kSrcMac = {0x02, 0, 0, 0, 0, 0x02};

    Packet &macs(std::array<std::uint8_t, 6> src, std::array<std::uint8_t, 6> dst);
    // Tags are added outermost first.
    Packet &vlan(std::uint16_t tpid, std::uint16_t vid);
    // Addresses of either family; both must be of the same family.
    Packet &ip(std::string_view src, std::string_view dst);
    // IPv4 options (padded with EOL to a multiple of 4; at most 40 bytes).
    Packet &ipv4_options(Bytes options);
    Packet &ipv6_ext(std::uint8_t type, Bytes data);
    Packet &fragment(Fragment f);
    Packet &udp(std::uint16_t sport, std::uint16_t dport);
    Packet &tcp(std::uint16_t sport, std::uint16_t dport, Tcp fields);
    Packet &payload(Bytes p);
    // IPv4 only: send the UDP checksum as 0 (none).
    Packet &no_udp_checksum();
    // Overrides of computed fields (for malformed packets). The checksum is still
    // computed, with the overridden UDP length in the UDP and pseudo headers.
    Packet &udp_length(std::uint16_t len);
    Packet &ip_length(std::uint16_t len);  // IPv4 total length / IPv6 payload length
    // Another IP protocol: `l4` (no checksum computed) replaces the UDP/TCP header + payload.
    Packet &l4(std::uint8_t protocol, Bytes l4);
    // Not IP at all: EtherType and the bytes after the Ethernet header (and tags).
    Packet &raw(std::uint16_t ethertype, Bytes l3);
    // Bytes after the IP packet, inside the frame (Ethernet padding), all 0xEE.
    Packet &padding(std::size_t n);

    const Addr &src() const { return src_; }
    const Addr &dst() const { return dst_; }
    std::uint16_t sport() const { return sport_; }
    std::uint16_t dport() const { return dport_; }
    const Bytes &payload() const { return payload_; }
    const Tcp &tcp_fields() const { return tcp_; }

    Bytes build() const;
    // Offset of the UDP (TCP, other L4) header in build().
    std::size_t l4_offset() const;

  private:
    Bytes l4_datagram() const;  // UDP or TCP header + payload, checksum filled in
    Bytes ip_header(std::size_t ip_payload_len) const;

    std::array<std::uint8_t, 6> src_mac_ = kSrcMac, dst_mac_ = kDstMac;
    std::vector<VlanTag> vlans_;
    std::optional<std::uint16_t> raw_ethertype_;
    Bytes raw_l3_;
    Addr src_, dst_;
    Bytes ipv4_options_;
    std::vector<Ipv6Ext> ext_;
    std::optional<Fragment> fragment_;
    std::uint8_t protocol_ = 17;
    Bytes raw_l4_;
    std::uint16_t sport_ = 0, dport_ = 0;
    Tcp tcp_;
    Bytes payload_;
    bool no_udp_checksum_ = false;
    std::optional<std::uint16_t> udp_length_, ip_length_;
    std::size_t padding_ = 0;
};

// The first n bytes of `frame` (all of it when shorter).
Bytes truncated(const Bytes &frame, std::size_t n);
// a then b.
Bytes concat(const Bytes &a, const Bytes &b);
// n bytes of a fixed, position-dependent pattern (no PROXY signature, no SPP magic).
Bytes pattern(std::size_t n, std::uint8_t seed = 0);

// --- Independent checking -------------------------------------------------------------

// RFC 1071 one's-complement sum of `data` (odd length padded with a zero byte) added to
// `initial`, folded to 16 bits. The checksum field value is the complement of it.
std::uint16_t ones_complement_sum(const std::uint8_t *data, std::size_t len,
                                  std::uint32_t initial = 0);

// The checksum field of TCP `segment` (header with checksum 0, then payload) from src to
// dst (RFC 793 pseudo-header; IPv4 or IPv6).
std::uint16_t tcp_checksum(const Addr &src, const Addr &dst, const Bytes &segment);

struct FrameCheck {
    bool parsed = false;  // an IPv4/IPv6 packet with a whole UDP or TCP header was found
    std::string error;    // why not, or the first thing found wrong
    bool ipv6 = false;
    std::uint8_t protocol = 0;  // 17 (UDP) or 6 (TCP) once parsed
    std::size_t l3_offset = 0, l4_offset = 0;
    std::size_t ip_length = 0;          // IPv4 total length, IPv6 40 + payload length
    std::size_t udp_length = 0;         // UDP: the UDP header's length field
    std::size_t tcp_header_length = 0;  // TCP: data offset * 4
    std::size_t trailing = 0;           // frame bytes after the IP packet
    bool lengths_ok = false;            // UDP length == IP payload after the headers (TCP: the
                                        // header fits it), frame holds it
    bool ip_checksum_ok = false;        // IPv4 header checksum (always true for IPv6)
    bool udp_checksum_present = false;
    bool l4_checksum_ok = false;  // UDP: correct, or absent on IPv4 (IPv6: 0 is wrong); TCP
    std::uint16_t udp_checksum = 0;
    Bytes payload;  // the UDP or TCP payload

    bool ok() const {
        return parsed && error.empty() && lengths_ok && ip_checksum_ok && l4_checksum_ok;
    }
};
// Parses Ethernet, up to any number of VLAN tags, IPv4 or IPv6 (hop-by-hop, routing,
// destination options, fragment headers) and UDP or TCP, and checks lengths and checksums.
FrameCheck check_frame(const Bytes &frame);

// The PROXY protocol v2 header: PROXY command, INET/INET6 + DGRAM (a UDP datagram) or
// STREAM (a TCP connection), no TLVs (28 bytes for IPv4, 52 for IPv6).
enum class Transport { dgram, stream };
Bytes proxy_v2_header(const Addr &src, std::uint16_t sport, const Addr &dst, std::uint16_t dport,
                      Transport transport = Transport::dgram);
// The PROXY protocol v1 line "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (TCP6 for IPv6),
// IPv4 dotted quad, IPv6 as eight lower-case hex groups without leading zeros and without
// "::" compression ("2001:db8:0:0:0:0:0:1": what the inline TCP program writes; any form
// inet_pton reads is valid v1).
Bytes proxy_v1_header(const Addr &src, std::uint16_t sport, const Addr &dst, std::uint16_t dport);
// The 38-byte Simple Proxy Protocol header (addresses IPv4-mapped for IPv4).
Bytes spp_header(const Addr &client, std::uint16_t client_port, const Addr &proxy,
                 std::uint16_t proxy_port);

// Hex dump (16 bytes a line) and "first difference at offset N" for assertion messages.
std::string hex(const Bytes &b);
std::string describe_difference(const Bytes &expected, const Bytes &got);

}  // namespace pptest
