// The inline TCP programs (bpf/tcp_inline.bpf.c, mode = "inline") on crafted frames under
// BPF_PROG_TEST_RUN: inline_ingress gets the client's segments (client -> the service
// address it dialled), inline_egress the backend's (service address -> client), in the
// order a connection produces them, and both share the state in inline_conns.
//
// Every step compares the EXACT output frame with one built independently by
// tests/support/packet.hpp from the expected fields (sequence and acknowledgement numbers,
// options, the PROXY header in front of the payload), with lengths and checksums computed
// from scratch, and runs the independent checksum verifier over the output. Counters of all
// services, summed over CPUs, are compared as a whole (every counter not named must stay
// 0), and the state is read back from inline_conns.
//
// Each test runs for IPv4 and IPv6, PROXY v1 and v2, and for v1 with a header of odd and of
// even length (the client port decides: the payload moved by an odd header changes parity).
// The ChecksumComplete instantiation runs everything again with the skb CHECKSUM_COMPLETE
// (BPF_F_TEST_SKB_CHECKSUM_COMPLETE, Linux 6.11) wherever the segment keeps its length (see
// step()): the kernel then fails a run whose skb->csum no longer matches the packet, as
// happens when bytes change without bpf_l4_csum_replace. CHECKSUM_PARTIAL cannot be set
// through the test-run interface (no ip_summed in struct __sk_buff), so that path is left to
// the namespace tests, where veth hands the stack CHECKSUM_PARTIAL skbs.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loader/service_key.hpp"
#include "loader/skeleton.hpp"
#include "support/counters.hpp"
#include "support/packet.hpp"
#include "support/privileges.hpp"
#include "sys/kernel.hpp"
#include "tcp_inline.skel.h"

#ifndef BPF_F_TEST_SKB_CHECKSUM_COMPLETE
#define BPF_F_TEST_SKB_CHECKSUM_COMPLETE (1U << 2) /* Linux 6.11 */
#endif

namespace {

using pptest::Addr;
using pptest::Bytes;
using pptest::concat;
using pptest::Packet;
using pptest::pattern;
using pptest::Tcp;

constexpr int kUnspec = TC_ACT_UNSPEC;
constexpr int kShot = TC_ACT_SHOT;

// --- What every test starts with ------------------------------------------------------

constexpr std::uint32_t kService = 1;                    // inline, 192.0.2.1 / 2001:db8::1
constexpr std::uint32_t kRelay = 2;                      // TCP, not inline, same addresses
constexpr std::uint16_t kPort = 443, kRelayPort = 8443;  // the services' ports
// inline_conns of the tests: a few connections each.
constexpr std::uint32_t kTestConns = 64;
constexpr std::uint64_t kIdle = 3'600'000'000'000ull;  // 1 h: no state expires during a test

// Sequence numbers: the client's ISN close to the wrap, so that isn + 1 + H and everything
// after it wraps past 0 and the sequence arithmetic must be modulo 2^32.
constexpr std::uint32_t kIsn = 0xFFFFFFE0u;
constexpr std::uint32_t kServerIsn = 0x70000000u;

enum class Family { v4, v6 };
enum class Csum { none, complete };

struct Variant {
    const char *name;
    Family family;
    std::uint8_t header;        // PP_HDR_V1 or PP_HDR_V2
    std::uint16_t client_port;  // decides the v1 header's length
    std::size_t hdr_len;        // H, as counted by hand from the spec
    Csum csum = Csum::none;
};

// v1 lengths: "PROXY TCP4 " 11 + "203.0.113.10" 12 + " 192.0.2.1" 10 + " 40000" 6 + " 443"
// 4 + CRLF 2 = 45; port 4000: 44. "PROXY TCP6 " 11 + "2001:db8:100:0:0:0:0:10" 23 +
// " 2001:db8:0:0:0:0:0:1" 21 + 6 + 4 + 2 = 67; port 4000: 66.
const Variant kVariants[] = {
    {"V4V2", Family::v4, PP_HDR_V2, 40000, 28},    {"V6V2", Family::v6, PP_HDR_V2, 40000, 52},
    {"V4V1Odd", Family::v4, PP_HDR_V1, 40000, 45}, {"V4V1Even", Family::v4, PP_HDR_V1, 4000, 44},
    {"V6V1Odd", Family::v6, PP_HDR_V1, 40000, 67}, {"V6V1Even", Family::v6, PP_HDR_V1, 4000, 66},
};

// Every variant with CHECKSUM_NONE. With CHECKSUM_COMPLETE only the segments that keep
// their length are checked (see step()), whose rewrites (bpf_l4_csum_replace of aligned
// words) do not depend on H: one variant per family and header version is enough, and each
// test under ctest is a process of its own that loads the programs again (inline_ingress
// takes about 0.35 s to verify on Linux 6.18).
std::vector<Variant> variants(Csum csum) {
    std::vector<Variant> out;
    for (Variant v : kVariants) {
        v.csum = csum;
        if (csum == Csum::none || std::string(v.name) == "V4V1Odd" ||
            std::string(v.name) == "V6V2") {
            out.push_back(v);
        }
    }
    return out;
}

void PrintTo(const Variant &v, std::ostream *os) {
    *os << v.name << (v.csum == Csum::complete ? "/checksum-complete" : "");
}

// --- TCP options ----------------------------------------------------------------------

Bytes u32be(std::uint32_t v) {
    return {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
            static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}
Bytes mss(std::uint16_t v) {
    return {2, 4, static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}
Bytes timestamps(std::uint32_t val = 0x01020304, std::uint32_t ecr = 0x05060708) {
    return concat(concat({8, 10}, u32be(val)), u32be(ecr));
}
const Bytes kNop = {1}, kNop2 = {1, 1};
const Bytes kSackOk = {4, 2};
const Bytes kWscale = {3, 3, 7};
Bytes sack(const std::vector<std::uint32_t> &edges) {
    Bytes o = {5, static_cast<std::uint8_t>(2 + 4 * edges.size())};
    for (std::uint32_t e : edges) {
        o = concat(o, u32be(e));
    }
    return o;
}
Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto &p : parts) {
        out = concat(out, p);
    }
    return out;
}
// A client SYN's options as Linux sends them: MSS, SACK permitted, timestamps, NOP, scale.
Bytes syn_options() {
    return cat({mss(1460), kSackOk, timestamps(), kNop, kWscale});
}

// --- One connection --------------------------------------------------------------------

// The client and service ends of a connection of the variant, and its frames.
struct Conn {
    Family family;
    std::uint8_t header;
    std::uint16_t cport;
    // Frames with an 802.1Q tag and IPv4 options or an IPv6 destination options header.
    bool framed = false;

    const char *client() const {
        return family == Family::v4 ? "203.0.113.10" : "2001:db8:100::10";
    }
    const char *service() const { return family == Family::v4 ? "192.0.2.1" : "2001:db8::1"; }
    Conn port(std::uint16_t p) const { return Conn{family, header, p, framed}; }

    Packet from_client(Tcp t, Bytes payload = {}, std::uint16_t dport = kPort) const {
        Packet p;
        p.ip(client(), service()).tcp(cport, dport, std::move(t)).payload(std::move(payload));
        return frame(p);
    }
    Packet from_service(Tcp t, Bytes payload = {}, std::uint16_t sport = kPort) const {
        Packet p;
        p.ip(service(), client()).tcp(sport, cport, std::move(t)).payload(std::move(payload));
        return frame(p);
    }
    Packet frame(Packet &p) const {
        if (framed) {
            p.vlan(0x8100, 100);
            if (family == Family::v4) {
                p.ipv4_options({1, 1, 1, 0});  // NOP NOP NOP EOL: IHL 6
            } else {
                p.ipv6_ext(IPPROTO_DSTOPTS, Bytes(6, 0));
            }
        }
        return p;
    }
    // The header the backend must get: from the client to the address it dialled.
    Bytes proxy_header() const {
        Addr c = Addr::parse(client()), s = Addr::parse(service());
        return header == PP_HDR_V1
                   ? pptest::proxy_v1_header(c, cport, s, kPort)
                   : pptest::proxy_v2_header(c, cport, s, kPort, pptest::Transport::stream);
    }
    std::uint32_t h() const { return static_cast<std::uint32_t>(proxy_header().size()); }

    pp_flow_key key() const {
        pp_flow_key k{};
        auto c = Addr::parse(client()).mapped(), s = Addr::parse(service()).mapped();
        std::memcpy(k.client_addr, c.data(), 16);
        std::memcpy(k.service_addr, s.data(), 16);
        k.client_port = htons(cport);
        k.service_port = htons(kPort);
        return k;
    }

    // The handshake's segments.
    Packet syn(Bytes options = syn_options()) const {
        return from_client(Tcp{kIsn, 0, Tcp::kSyn, 64240, 0, std::move(options)});
    }
    Packet syn_ack(Bytes options = cat({mss(1460), kSackOk, timestamps(9, 1), kNop,
                                        kWscale})) const {
        return from_service(
            Tcp{kServerIsn, kIsn + 1, Tcp::kSyn | Tcp::kAck, 65160, 0, std::move(options)});
    }
    // A client segment (ACK set) at `seq`.
    Packet data(std::uint32_t seq, Bytes payload,
                std::uint8_t flags = Tcp::kAck | Tcp::kPsh) const {
        return from_client(Tcp{seq, kServerIsn + 1, flags, 502, 0, timestamps(2, 9)},
                           std::move(payload));
    }
    // A backend segment acknowledging `ack` (backend space), with `options`.
    Packet ack(std::uint32_t ack, Bytes options = cat({kNop2, timestamps(10, 2)}),
               std::uint8_t flags = Tcp::kAck) const {
        return from_service(Tcp{kServerIsn + 1, ack, flags, 509, 0, std::move(options)});
    }
};

// `p` with its TCP fields edited by f.
template <typename F>
Packet edit(Packet p, F f) {
    Tcp t = p.tcp_fields();
    f(t);
    p.tcp(p.sport(), p.dport(), std::move(t));
    return p;
}
Packet with_seq(const Packet &p, std::uint32_t seq) {
    return edit(p, [seq](Tcp &t) { t.seq = seq; });
}
Packet with_ack(const Packet &p, std::uint32_t ack) {
    return edit(p, [ack](Tcp &t) { t.ack = ack; });
}
Packet with_options(const Packet &p, Bytes o) {
    return edit(p, [&o](Tcp &t) { t.options = o; });
}
// `p` with `header` in front of its payload.
Packet with_header(Packet p, const Bytes &header) {
    Bytes payload = concat(header, p.payload());
    p.payload(std::move(payload));
    return p;
}

// --- Counters -------------------------------------------------------------------------

using pptest::AllCounts;
using pptest::Counts;
using pptest::counts;

// --- Fixture --------------------------------------------------------------------------

enum class Dir { ingress, egress };

class TcpInlineProgTest : public ::testing::TestWithParam<Variant> {
  protected:
    struct Result {
        int err = 0;
        int verdict = -1000;
        Bytes out;
    };

    // One skeleton serves the suite (a load takes a third of a second, most of it the
    // verifier), its maps emptied before each test; a test that needs another table size
    // loads its own.
    static void TearDownTestSuite() { shared_.reset(); }

    void SetUp() override {
        PP_REQUIRE_ROOT();
        if (!shared_) {
            shared_ = load_skeleton(kTestConns);
            ASSERT_TRUE(shared_);
        }
        skel_ = shared_.get();
        reset_maps();
        add_services();
        if (HasFatalFailure()) {
            return;
        }
        if (GetParam().csum == Csum::complete) {
            // Probe with a frame of no service: EINVAL is a kernel without the flag.
            Packet other = conn().from_client(Tcp{}, {}, 80);
            Result r = run(Dir::ingress, other.build());
            if (r.err == -EINVAL) {
                PP_SKIP_MISSING_KERNEL_FEATURE("BPF_F_TEST_SKB_CHECKSUM_COMPLETE (Linux 6.11)");
            }
            ASSERT_EQ(r.err, 0) << "BPF_PROG_TEST_RUN with CHECKSUM_COMPLETE: "
                                << std::strerror(-r.err);
        }
    }

    // A skeleton with inline_conns sized max_conns before the load; empty on failure.
    static ppinject::Skeleton<tcp_inline_bpf> load_skeleton(std::uint32_t max_conns) {
        ppinject::Skeleton<tcp_inline_bpf> skel(tcp_inline_bpf::open());
        EXPECT_TRUE(skel) << "open tcp_inline skeleton: " << std::strerror(errno);
        if (!skel) {
            return skel;
        }
        int err = bpf_map__set_max_entries(skel->maps.inline_conns, max_conns);
        EXPECT_EQ(err, 0) << "set inline_conns max_entries: " << std::strerror(-err);
        err = err ? err : tcp_inline_bpf::load(skel.get());
        EXPECT_EQ(err, 0) << "load tcp_inline skeleton: " << std::strerror(-err);
        if (err) {
            skel.reset();
        }
        return skel;
    }

    // This test's own skeleton, inline_conns sized max_conns, instead of the shared one.
    void load(std::uint32_t max_conns) {
        own_ = load_skeleton(max_conns);
        ASSERT_TRUE(own_);
        skel_ = own_.get();
        add_services();
    }

    // No connection states, every counter 0.
    void reset_maps() {
        pp_flow_key k{};
        for (int i = 0; i < 10'000 &&
                        bpf_map__get_next_key(skel_->maps.inline_conns, nullptr, &k, sizeof k) == 0;
             i++) {
            int err = bpf_map__delete_elem(skel_->maps.inline_conns, &k, sizeof k, 0);
            ASSERT_EQ(err, 0) << "delete a state of the last test: " << std::strerror(-err);
        }
        int ncpu = libbpf_num_possible_cpus();
        ASSERT_GT(ncpu, 0);
        std::vector<pp_counters> zero(static_cast<std::size_t>(ncpu));
        for (std::uint32_t id = 0; id < PP_MAX_SERVICES; id++) {
            int err = bpf_map__update_elem(skel_->maps.counters, &id, sizeof id, zero.data(),
                                           zero.size() * sizeof(pp_counters), 0);
            ASSERT_EQ(err, 0) << "zero counters[" << id << "]: " << std::strerror(-err);
        }
    }

    // The inline service and a relay-mode one, both addresses; header of the variant.
    void add_services() {
        for (const char *addr : {"192.0.2.1", "2001:db8::1"}) {
            add_service(addr, kPort, kService, PP_SVC_INLINE);
            add_service(addr, kRelayPort, kRelay, PP_SVC_TRANSPARENT);
        }
    }

    void add_service(const char *addr, std::uint16_t port, std::uint32_t id, std::uint8_t flags,
                     std::uint64_t idle_ns = kIdle) {
        auto a = ppinject::IpAddress::parse(addr);
        ASSERT_TRUE(a) << addr;
        pp_service_key key =
            ppinject::make_service_key(IPPROTO_TCP, *a, a->is_v4() ? 32 : 128, port);
        pp_service v{};
        v.id = id;
        v.header = GetParam().header;
        v.flags = flags;
        v.flow_timeout_ns = idle_ns;
        std::snprintf(v.name, sizeof v.name, "svc%u", id);
        int err = bpf_map__update_elem(skel_->maps.services, &key, sizeof key, &v, sizeof v, 0);
        ASSERT_EQ(err, 0) << "services[" << addr << ":" << port << "]: " << std::strerror(-err);
    }

    Conn conn() const {
        const Variant &v = GetParam();
        return Conn{v.family, v.header, v.client_port};
    }

    // The test run of one frame; `complete`: as a CHECKSUM_COMPLETE skb, when the variant
    // asks for it.
    Result run(Dir dir, const Bytes &in, const __sk_buff *ctx = nullptr, bool complete = true) {
        Result r;
        r.out.assign(in.size() + 512, 0);
        __sk_buff ctx_copy{};
        LIBBPF_OPTS(bpf_test_run_opts, opts);
        opts.data_in = in.data();
        opts.data_size_in = static_cast<__u32>(in.size());
        opts.data_out = r.out.data();
        opts.data_size_out = static_cast<__u32>(r.out.size());
        if (ctx) {
            ctx_copy = *ctx;
            opts.ctx_in = &ctx_copy;
            opts.ctx_size_in = sizeof ctx_copy;
        }
        if (complete && GetParam().csum == Csum::complete) {
            opts.flags = BPF_F_TEST_SKB_CHECKSUM_COMPLETE;
        }
        opts.repeat = 1;
        int prog = bpf_program__fd(dir == Dir::ingress ? skel_->progs.inline_ingress
                                                       : skel_->progs.inline_egress);
        r.err = bpf_prog_test_run_opts(prog, &opts);
        r.verdict = static_cast<int>(opts.retval);
        r.out.resize(r.err == 0 ? opts.data_size_out : 0);
        return r;
    }

    // One segment through `dir`: the verdict, and for a segment let through exactly `want`
    // (nullopt: `in` unchanged); a changed output must also pass the independent checks.
    //
    // CHECKSUM_COMPLETE applies to segments whose length stays: one that grows or shrinks
    // goes through bpf_skb_change_tail, which makes the skb CHECKSUM_NONE (the stack then
    // verifies the checksum itself), but the test run still compares the stale skb->csum
    // with the packet and fails with EBADMSG whenever the packet's sum changed (IPv4: always,
    // by the TCP length in the pseudo-header; IPv6: never, the payload length cancels it).
    void step(const std::string &what, Dir dir, const Packet &in, int verdict,
              const std::optional<Packet> &want = std::nullopt, const __sk_buff *ctx = nullptr) {
        SCOPED_TRACE(what);
        Bytes frame = in.build();
        bool same_length = !want || want->build().size() == frame.size();
        Result r = run(dir, frame, ctx, same_length);
        ASSERT_EQ(r.err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-r.err)
                            << (r.err == -EBADMSG ? " (skb->csum does not match the packet)" : "");
        EXPECT_EQ(r.verdict, verdict);
        if (verdict != kUnspec) {
            return;
        }
        Bytes expected = want ? want->build() : frame;
        EXPECT_TRUE(r.out == expected) << pptest::describe_difference(expected, r.out);
        if (!want) {
            return;  // unchanged: the builder's frame, whatever it is (ARP, UDP, TCP)
        }
        pptest::FrameCheck fc = pptest::check_frame(r.out);
        EXPECT_TRUE(fc.ok()) << "output fails the independent check: " << fc.error;
        pptest::FrameCheck fw = pptest::check_frame(expected);
        EXPECT_TRUE(fw.ok()) << "expected frame fails the independent check: " << fw.error;
    }

    // A GSO skb for ctx_in: two segments of 1000 bytes.
    static __sk_buff gso_ctx() {
        __sk_buff gso{};
        gso.gso_segs = 2;
        gso.gso_size = 1000;
        return gso;
    }
    // Whether this kernel's test run takes gso_ctx() (a frame of no service, so no state
    // and no counter changes).
    bool gso_accepted() {
        const __sk_buff gso = gso_ctx();
        Packet other;
        other.ip("198.51.100.7", "198.51.100.8").tcp(1, 2, Tcp{1, 0, Tcp::kAck, 100, 0, {}});
        return run(Dir::ingress, other.build(), &gso).err != -EINVAL;
    }

    AllCounts all_counters() { return pptest::read_all_counters(skel_->maps.counters); }

    std::optional<pp_inline_conn> state(const Conn &c) {
        pp_flow_key k = c.key();
        pp_inline_conn v{};
        if (bpf_map__lookup_elem(skel_->maps.inline_conns, &k, sizeof k, &v, sizeof v, 0) != 0) {
            return std::nullopt;
        }
        return v;
    }

    // The flags of c's state, ingress's and egress's, as {flags, flags_backend}.
    std::pair<int, int> flags(const Conn &c) {
        auto s = state(c);
        EXPECT_TRUE(s) << "no state for client port " << c.cport;
        return s ? std::pair<int, int>{s->flags, s->flags_backend} : std::pair<int, int>{-1, -1};
    }

    // SYN and SYN-ACK of `c`, the SYN-ACK's MSS clamped.
    void open(const Conn &c) {
        step("SYN", Dir::ingress, c.syn(), kUnspec);
        Packet sa = c.syn_ack();
        step("SYN-ACK", Dir::egress, sa, kUnspec,
             with_options(sa, cat({mss(static_cast<std::uint16_t>(1460 - c.h())), kSackOk,
                                   timestamps(9, 1), kNop, kWscale})));
    }
    // open(), then the handshake's ACK carrying the header.
    void establish(const Conn &c) {
        open(c);
        Packet a = c.data(kIsn + 1, {}, Tcp::kAck);
        step("handshake ACK", Dir::ingress, a, kUnspec, with_header(a, c.proxy_header()));
    }
    // establish(), then the backend acknowledges the header.
    void establish_acked(const Conn &c) {
        establish(c);
        Packet a = c.ack(kIsn + 1 + c.h());
        step("ACK of the header", Dir::egress, a, kUnspec, with_ack(a, kIsn + 1));
    }

    static inline ppinject::Skeleton<tcp_inline_bpf> shared_;
    ppinject::Skeleton<tcp_inline_bpf> own_;
    tcp_inline_bpf *skel_ = nullptr;  // shared_ or own_
};

// --- 1. The SYN -----------------------------------------------------------------------

TEST_P(TcpInlineProgTest, SynPassesAndCreatesTheState) {
    const Conn c = conn();
    ASSERT_EQ(c.proxy_header().size(), GetParam().hdr_len) << "the expected header itself";
    step("SYN", Dir::ingress, c.syn(), kUnspec);
    auto s = state(c);
    ASSERT_TRUE(s) << "inline_conns has no state for the SYN's 4-tuple";
    EXPECT_EQ(s->isn, kIsn);
    EXPECT_EQ(s->service_id, kService);
    EXPECT_EQ(s->hdr_len, GetParam().hdr_len);
    Bytes hdr(s->hdr, s->hdr + s->hdr_len);
    EXPECT_TRUE(hdr == c.proxy_header()) << pptest::describe_difference(c.proxy_header(), hdr);
    for (std::size_t i = s->hdr_len; i < PP_INLINE_HDR_MAX; i++) {
        ASSERT_EQ(s->hdr[i], 0) << "hdr[] past the header must be zeros (summed as words), at "
                                << i;
    }
    EXPECT_EQ(s->flags, 0);
    EXPECT_EQ(s->flags_backend, 0);
    EXPECT_EQ(s->idle_timeout_ms, kIdle / 1'000'000);
    EXPECT_EQ(s->packets_in, 1u);
    EXPECT_EQ(s->packets_out, 0u);
    EXPECT_NE(s->created_ns, 0u);
    EXPECT_EQ(s->created_ns, s->last_seen_ns);
    EXPECT_EQ(all_counters(),
              (AllCounts{{kService, counts({{"seen", 1}, {"inline_conns_new", 1}})}}));

    // The SYN again (retransmitted): the same state, counted as no new connection.
    step("SYN again", Dir::ingress, c.syn(), kUnspec);
    // A SYN with another ISN inside the live connection: passed on for the backend to
    // answer with an ACK, the state kept.
    step("SYN with another ISN", Dir::ingress, with_seq(c.syn(), kIsn - 5000), kUnspec);
    s = state(c);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->isn, kIsn);
    EXPECT_EQ(s->packets_in, 2u);
    EXPECT_EQ(all_counters(),
              (AllCounts{{kService, counts({{"seen", 3}, {"inline_conns_new", 1}})}}));
}

// --- 2. Fast Open ---------------------------------------------------------------------

TEST_P(TcpInlineProgTest, FastOpenOptionAndDataAreStripped) {
    const Bytes cookie = {0xC0, 0x0C, 0x1E, 0x00, 0xDE, 0xAD, 0xBE, 0xEF};
    const Bytes tfo = concat({34, 10}, cookie);                     // RFC 7413
    const Bytes tfo_exp = concat({254, 12, 0xF9, 0x89}, cookie);    // experimental, RFC 6994
    const Bytes tfo_request = {34, 2};                              // cookie request
    const Bytes other_exp = concat({254, 12, 0xF9, 0x8A}, cookie);  // another experiment
    struct Sub {
        const char *name;
        Bytes option;  // after MSS, SACK permitted and timestamps
        std::size_t data;
        bool stripped;
    };
    const Sub subs[] = {
        {"Kind34CookieAndData", tfo, 100, true},
        {"Kind254CookieAndData", tfo_exp, 100, true},
        {"Kind34CookieRequestNoData", tfo_request, 0, true},
        {"DataWithoutOption", {}, 100, true},
        {"Kind34CookieAndOddData", tfo, 7, true},  // the cut bytes' sum ends in a partial word
        {"OtherExperimentalOptionKept", other_exp, 0, false},
    };
    std::uint64_t n = 0, stripped = 0;
    for (const Sub &sub : subs) {
        SCOPED_TRACE(sub.name);
        const Conn c = conn().port(static_cast<std::uint16_t>(50000 + n));
        Bytes head = cat({mss(1460), kSackOk, timestamps()});
        Bytes opts = cat({head, sub.option});
        Bytes nops(sub.option.size(), 1);
        if (!sub.stripped) {
            nops = sub.option;
        }
        Bytes want_opts = cat({head, nops});
        while (opts.size() % 4) {  // whole words, the padding NOPs as a sender writes them
            opts.push_back(1);
            want_opts.push_back(1);
        }
        Packet in = c.syn(opts).payload(pattern(sub.data));
        Packet want = c.syn(want_opts);
        step(sub.name, Dir::ingress, in, kUnspec, want);
        n++;
        stripped += sub.stripped;
        auto s = state(c);
        ASSERT_TRUE(s);
        EXPECT_EQ(s->hdr_len, c.h());
        EXPECT_EQ(s->flags, 0);
    }
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", n},
                                                            {"inline_conns_new", n},
                                                            {"inline_tfo_stripped", stripped}})}}));
}

// --- 3. MSS ---------------------------------------------------------------------------

TEST_P(TcpInlineProgTest, SynAckMssIsLoweredByTheHeader) {
    const Conn c = conn();
    open(c);  // MSS 1460 first in the options
    // The MSS at an odd offset, behind a NOP. (Another client port: a v1 header's length
    // may differ, so H is the one of this connection.)
    const Conn odd = c.port(50001);
    const std::uint16_t h = static_cast<std::uint16_t>(odd.h());
    step("SYN (odd)", Dir::ingress, odd.syn(), kUnspec);
    Packet sa = odd.syn_ack(cat({kNop, mss(1460), kSackOk, timestamps(9, 1), kNop2}));
    step("SYN-ACK, MSS behind a NOP", Dir::egress, sa, kUnspec,
         with_options(sa, cat({kNop, mss(static_cast<std::uint16_t>(1460 - h)), kSackOk,
                               timestamps(9, 1), kNop2})));
    // A path whose MSS is no more than H + 64 is left alone.
    const Conn small = c.port(50002);
    step("SYN (small)", Dir::ingress, small.syn(), kUnspec);
    step("SYN-ACK, small MSS", Dir::egress,
         small.syn_ack(cat({mss(static_cast<std::uint16_t>(small.h() + 64)), kNop2, kSackOk})),
         kUnspec);
    EXPECT_EQ(
        all_counters(),
        (AllCounts{{kService,
                    counts({{"seen", 3}, {"inline_conns_new", 3}, {"inline_mss_clamped", 2}})}}));
}

// --- 4. The header on the handshake's ACK ---------------------------------------------

TEST_P(TcpInlineProgTest, HandshakeAckCarriesTheHeader) {
    const Conn c = conn();
    establish(c);  // checks the ACK: header as payload, seq isn + 1, IP length + H
    EXPECT_EQ(flags(c), (std::pair<int, int>{PP_INLINE_HDR_SENT, 0}));
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 2},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1}})}}));
}

// --- 5. Again on client data at isn + 1 until the backend acknowledges it ---------------

TEST_P(TcpInlineProgTest, DataAtIsnPlusOneCarriesTheHeaderAgainUntilAcked) {
    const Conn c = conn();
    establish(c);
    // Every length mod 8 (the sum reads whole words and masks the last), and more than one
    // move chunk (2048) and sum chunk (512), ending in a partial word.
    std::uint64_t resent = 0;
    for (std::size_t len : {100, 1, 2, 3, 4, 5, 6, 7, 8, 101, 103, 2100, 2101, 2103}) {
        Packet d = c.data(kIsn + 1, pattern(len, static_cast<std::uint8_t>(len)));
        step("data at isn+1, " + std::to_string(len) + " bytes", Dir::ingress, d, kUnspec,
             with_header(d, c.proxy_header()));
        resent++;
    }
    EXPECT_EQ(flags(c), (std::pair<int, int>{PP_INLINE_HDR_SENT, 0}));
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 2 + resent},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1},
                                                            {"inline_header_resent", resent}})}}));
}

TEST_P(TcpInlineProgTest, FirstDataCarriesTheHeaderWhenTheHandshakeAckWasNotSeen) {
    const Conn c = conn();
    open(c);
    Packet d = c.data(kIsn + 1, pattern(100));
    step("first data", Dir::ingress, d, kUnspec, with_header(d, c.proxy_header()));
    // A FIN at isn + 1 (the client closes at once) carries it too.
    Packet fin = c.data(kIsn + 1, {}, Tcp::kFin | Tcp::kAck);
    step("FIN at isn+1", Dir::ingress, fin, kUnspec, with_header(fin, c.proxy_header()));
    EXPECT_EQ(flags(c), (std::pair<int, int>{PP_INLINE_HDR_SENT | PP_INLINE_FIN_CLIENT, 0}));
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 3},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1},
                                                            {"inline_header_resent", 1}})}}));
}

// --- 6. The backend's ACK of the header -----------------------------------------------

TEST_P(TcpInlineProgTest, AckOfHeaderAndDataEndsTheHeaderAndShiftsTheRest) {
    const Conn c = conn();
    establish(c);
    Packet d = c.data(kIsn + 1, pattern(100));
    step("data at isn+1", Dir::ingress, d, kUnspec, with_header(d, c.proxy_header()));
    Packet a = c.ack(kIsn + 1 + c.h() + 100);
    step("ACK of header + data", Dir::egress, a, kUnspec, with_ack(a, kIsn + 1 + 100));
    EXPECT_EQ(flags(c), (std::pair<int, int>{PP_INLINE_HDR_SENT, PP_INLINE_HDR_ACKED}));
    // The same data again (a retransmission): shifted, no header.
    step("data at isn+1 after the ACK", Dir::ingress, d, kUnspec, with_seq(d, kIsn + 1 + c.h()));
    auto s = state(c);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->packets_in, 4u);
    EXPECT_EQ(s->packets_out, 2u);
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 4},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1},
                                                            {"inline_header_resent", 1}})}}));
}

// --- 7. Sequence numbers forward, acknowledgements back -------------------------------

TEST_P(TcpInlineProgTest, SequenceNumbersMoveForwardAndAcksBack) {
    const Conn c = conn();
    const std::uint32_t h = c.h();
    establish(c);
    // Before the backend has all of the header: acks inside it acknowledge nothing of the
    // client's (isn + 1), acks at or below isn + 1 are the client's already.
    struct AckCase {
        const char *name;
        std::uint32_t in, out;
    };
    const AckCase before[] = {
        {"ack isn+2 (inside the header)", kIsn + 2, kIsn + 1},
        {"ack isn+H (last header byte)", kIsn + h, kIsn + 1},
        {"ack isn+1", kIsn + 1, kIsn + 1},
        {"ack isn (below)", kIsn, kIsn},
        {"ack isn-1000 (below)", kIsn - 1000, kIsn - 1000},
    };
    for (const AckCase &k : before) {
        Packet a = c.ack(k.in);
        step(k.name, Dir::egress, a, kUnspec, with_ack(a, k.out));
    }
    EXPECT_EQ(flags(c).second, 0) << "no ack covered the header yet";
    const AckCase after[] = {
        {"ack isn+1+H (the header, exactly)", kIsn + 1 + h, kIsn + 1},
        {"ack isn+1+H+1", kIsn + 1 + h + 1, kIsn + 2},
        {"ack isn+1+H+100000", kIsn + 1 + h + 100000, kIsn + 1 + 100000},
        {"ack isn+H (an old ack)", kIsn + h, kIsn + 1},
    };
    for (const AckCase &k : after) {
        Packet a = c.ack(k.in);
        step(k.name, Dir::egress, a, kUnspec, with_ack(a, k.out));
    }
    EXPECT_EQ(flags(c).second, PP_INLINE_HDR_ACKED);
    // Client segments after the header: H further on.
    for (std::uint32_t off : {1u, 101u, 100000u}) {
        Packet d = c.data(kIsn + off, pattern(100, static_cast<std::uint8_t>(off)));
        step("data at isn+" + std::to_string(off), Dir::ingress, d, kUnspec,
             with_seq(d, kIsn + off + h));
    }
    // A pure ACK from the client, and the backend's data segment with its ack.
    Packet pure = c.data(kIsn + 1 + 100, {}, Tcp::kAck);
    step("client pure ACK", Dir::ingress, pure, kUnspec, with_seq(pure, kIsn + 1 + 100 + h));
    Packet sd = c.from_service(
        Tcp{kServerIsn + 1, kIsn + 1 + h + 100, Tcp::kAck | Tcp::kPsh, 509, 0, {}}, pattern(333));
    step("backend data", Dir::egress, sd, kUnspec, with_ack(sd, kIsn + 1 + 100));
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 6},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1}})}}));
}

// --- 8. SACK --------------------------------------------------------------------------

TEST_P(TcpInlineProgTest, SackEdgesMoveBack) {
    const Conn c = conn();
    const std::uint32_t h = c.h();
    const std::uint32_t first = kIsn + 1;
    establish_acked(c);
    // Edges in the backend's space and where they must land in the client's.
    using Edges = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
    const Edges one = {{first + h + 100, first + 100}, {first + h + 200, first + 200}};
    const Edges two = {{first + h + 300, first + 300},
                       {first + h + 400, first + 400},
                       {first + 5, first},  // inside the header (D-SACK of a header byte)
                       {first + h + 50, first + 50}};
    const Edges three = {{first + h + 1000, first + 1000},
                         {first + h + 2000, first + 2000},
                         {first + h, first},
                         {first + h - 1, first},
                         {kIsn - 100, kIsn - 100},
                         {first + h + 70000, first + 70000}};
    const Edges four = {{first + h + 10, first + 10},
                        {first + h + 20, first + 20},
                        {first + h + 30, first + 30},
                        {first + h + 40, first + 40},
                        {first, first},
                        {first + 1, first},
                        {kIsn - 7, kIsn - 7},
                        {first + h + 0x10000, first + 0x10000}};
    struct Sub {
        const char *name;
        bool ts;
        const Edges *edges;
    };
    const Sub subs[] = {
        {"NopNopSack1", false, &one},    {"NopNopSack2", false, &two},
        {"NopNopSack4", false, &four},   {"TimestampsSack1", true, &one},
        {"TimestampsSack2", true, &two}, {"TimestampsSack3", true, &three},
    };
    for (const Sub &sub : subs) {
        std::vector<std::uint32_t> in, out;
        for (auto [i, o] : *sub.edges) {
            in.push_back(i);
            out.push_back(o);
        }
        Bytes ts = sub.ts ? cat({kNop2, timestamps(11, 3)}) : Bytes{};
        Packet a = c.ack(first + h, cat({ts, kNop2, sack(in)}));
        Packet want = with_ack(with_options(a, cat({ts, kNop2, sack(out)})), first);
        step(sub.name, Dir::egress, a, kUnspec, want);
    }
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 2},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1}})}}));
}

// --- 9. No state ----------------------------------------------------------------------

TEST_P(TcpInlineProgTest, SegmentWithoutStateIsDroppedBothWays) {
    const Conn c = conn();
    step("client ACK", Dir::ingress, c.data(kIsn + 1, {}, Tcp::kAck), kShot);
    step("client data", Dir::ingress, c.data(kIsn + 1, pattern(10)), kShot);
    step("client RST", Dir::ingress, c.data(kIsn + 1, {}, Tcp::kRst), kShot);
    step("backend ACK", Dir::egress, c.ack(kIsn + 1), kShot);
    step("backend SYN-ACK", Dir::egress, c.syn_ack(), kShot);
    EXPECT_FALSE(state(c));
    EXPECT_EQ(all_counters(),
              (AllCounts{{kService, counts({{"seen", 3}, {"inline_no_state", 5}})}}));
}

// --- 10. GSO --------------------------------------------------------------------------

TEST_P(TcpInlineProgTest, GsoPacketThatWouldCarryTheHeaderIsDropped) {
    const Conn c = conn();
    open(c);
    const __sk_buff gso = gso_ctx();
    if (!gso_accepted()) {
        PP_SKIP_MISSING_KERNEL_FEATURE("gso_segs/gso_size in the ctx_in of a tc test run");
    }
    step("GSO data at isn+1", Dir::ingress, c.data(kIsn + 1, pattern(2000)), kShot, std::nullopt,
         &gso);
    EXPECT_EQ(flags(c), (std::pair<int, int>{0, 0})) << "no header went out";
    // Its retransmission as one segment carries the header; after the backend's ACK a GSO
    // packet needs none and passes shifted.
    Packet one = c.data(kIsn + 1, pattern(1000));
    step("data at isn+1, one segment", Dir::ingress, one, kUnspec,
         with_header(one, c.proxy_header()));
    Packet a = c.ack(kIsn + 1 + c.h() + 1000);
    step("ACK", Dir::egress, a, kUnspec, with_ack(a, kIsn + 1 + 1000));
    Packet later = c.data(kIsn + 1 + 1000, pattern(2000));
    step("GSO data later", Dir::ingress, later, kUnspec, with_seq(later, kIsn + 1 + 1000 + c.h()),
         &gso);
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 4},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_gso_dropped", 1},
                                                            {"inline_headers", 1}})}}));
}

// A GSO packet at isn+1 right after the handshake's ACK took the header (not acknowledged
// yet: the normal case for a client that writes a lot at once) goes on shifted, not dropped.
TEST_P(TcpInlineProgTest, GsoPacketAfterTheHeaderWentOutPassesShifted) {
    const Conn c = conn();
    establish(c);
    const __sk_buff gso = gso_ctx();
    if (!gso_accepted()) {
        PP_SKIP_MISSING_KERNEL_FEATURE("gso_segs/gso_size in the ctx_in of a tc test run");
    }
    Packet d = c.data(kIsn + 1, pattern(2000));
    step("GSO data at isn+1 after the header went out: shifted, no second header", Dir::ingress, d,
         kUnspec, with_seq(d, kIsn + 1 + c.h()), &gso);
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 3},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1}})}}));
}

// A VLAN tag and IPv4 options or an IPv6 extension header in front of the TCP header: the
// header goes in, sequence numbers and acks move, checksums hold, as without them.
TEST_P(TcpInlineProgTest, VlanTagAndIpOptionsOrExtensionHeaders) {
    Conn c = conn();
    c.framed = true;
    establish(c);
    Packet d = c.data(kIsn + 1, pattern(100));
    step("data at isn+1", Dir::ingress, d, kUnspec, with_header(d, c.proxy_header()));
    Packet a = c.ack(kIsn + 1 + c.h() + 100);
    step("ACK of the header and data", Dir::egress, a, kUnspec, with_ack(a, kIsn + 1 + 100));
    Packet later = c.data(kIsn + 1 + 100, pattern(50));
    step("later data", Dir::ingress, later, kUnspec, with_seq(later, kIsn + 1 + 100 + c.h()));
}

// --- 11. FIN and RST ------------------------------------------------------------------

TEST_P(TcpInlineProgTest, FinBothWaysMarksTheStateClosing) {
    const Conn c = conn();
    const std::uint32_t h = c.h();
    establish_acked(c);
    Packet fin = c.data(kIsn + 1, {}, Tcp::kFin | Tcp::kAck);
    step("client FIN", Dir::ingress, fin, kUnspec, with_seq(fin, kIsn + 1 + h));
    EXPECT_EQ(flags(c), (std::pair<int, int>{PP_INLINE_HDR_SENT | PP_INLINE_FIN_CLIENT,
                                             PP_INLINE_HDR_ACKED}));
    Packet bfin = c.ack(kIsn + 1 + h + 1, cat({kNop2, timestamps(12, 4)}), Tcp::kFin | Tcp::kAck);
    step("backend FIN", Dir::egress, bfin, kUnspec, with_ack(bfin, kIsn + 2));
    EXPECT_EQ(flags(c), (std::pair<int, int>{PP_INLINE_HDR_SENT | PP_INLINE_FIN_CLIENT,
                                             PP_INLINE_HDR_ACKED | PP_INLINE_FIN_BACKEND}));
    // The last ACK, shifted like any segment.
    Packet last = c.data(kIsn + 2, {}, Tcp::kAck);
    step("client's last ACK", Dir::ingress, last, kUnspec, with_seq(last, kIsn + 2 + h));

    // A new connection on the same 4-tuple after the close (another ISN) replaces the state.
    Packet syn = with_seq(c.syn(), kIsn + 0x01000000);
    step("new SYN on the closed 4-tuple", Dir::ingress, syn, kUnspec);
    auto s = state(c);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->isn, kIsn + 0x01000000);
    EXPECT_EQ(s->flags, 0);
    EXPECT_EQ(s->flags_backend, 0);
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 5},
                                                            {"inline_conns_new", 2},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1}})}}));
}

TEST_P(TcpInlineProgTest, ResetFromEitherSideMarksTheState) {
    const Conn client_rst = conn().port(50010), backend_rst = conn().port(50011);
    const std::uint32_t h = client_rst.h();
    establish_acked(client_rst);
    Packet rst = client_rst.data(kIsn + 1, {}, Tcp::kRst | Tcp::kAck);
    step("client RST", Dir::ingress, rst, kUnspec, with_seq(rst, kIsn + 1 + h));
    EXPECT_EQ(flags(client_rst), (std::pair<int, int>{PP_INLINE_HDR_SENT | PP_INLINE_RESET_CLIENT,
                                                      PP_INLINE_HDR_ACKED}));
    establish_acked(backend_rst);
    Packet brst = backend_rst.ack(kIsn + 1 + h, {}, Tcp::kRst | Tcp::kAck);
    step("backend RST", Dir::egress, brst, kUnspec, with_ack(brst, kIsn + 1));
    EXPECT_EQ(
        flags(backend_rst),
        (std::pair<int, int>{PP_INLINE_HDR_SENT, PP_INLINE_HDR_ACKED | PP_INLINE_RESET_BACKEND}));
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 5},
                                                            {"inline_conns_new", 2},
                                                            {"inline_mss_clamped", 2},
                                                            {"inline_headers", 2}})}}));
}

// --- The state's timer ----------------------------------------------------------------

TEST_P(TcpInlineProgTest, IdleStateIsRemovedByItsTimer) {
    const Conn c = conn();
    add_service(c.service(), kPort, kService, PP_SVC_INLINE, 1'000'000);  // idle after 1 ms
    step("SYN", Dir::ingress, c.syn(), kUnspec);
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {  // at most 2 s
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        gone = !state(c);
    }
    EXPECT_TRUE(gone) << "the state is still there 2 s after a 1 ms idle timeout";
    EXPECT_EQ(all_counters(),
              (AllCounts{{kService,
                          counts({{"seen", 1}, {"inline_conns_new", 1}, {"inline_closed", 1}})}}));
}

// --- 12. A full table -----------------------------------------------------------------

TEST_P(TcpInlineProgTest, FullTableRefusesNewSyns) {
    load(2);
    ASSERT_FALSE(HasFatalFailure());
    const Conn a = conn().port(50020), b = conn().port(50021), third = conn().port(50022);
    step("SYN 1", Dir::ingress, a.syn(), kUnspec);
    step("SYN 2", Dir::ingress, b.syn(), kUnspec);
    step("SYN 3", Dir::ingress, third.syn(), kShot);
    EXPECT_FALSE(state(third));
    step("SYN 1 again", Dir::ingress, a.syn(), kUnspec);  // a live state is no new entry
    EXPECT_EQ(all_counters(),
              (AllCounts{{kService,
                          counts({{"seen", 4}, {"inline_conns_new", 2}, {"inline_refused", 1}})}}));
}

// --- 13. Not ours ---------------------------------------------------------------------

TEST_P(TcpInlineProgTest, SegmentsOfNoInlineServicePassUnchanged) {
    const Conn c = conn();
    const bool v6 = GetParam().family == Family::v6;
    const Tcp syn{kIsn, 0, Tcp::kSyn, 64240, 0, syn_options()};
    step("other port", Dir::ingress, c.from_client(syn, {}, 80), kUnspec);
    step("other port, egress", Dir::egress, c.from_service(Tcp{}, pattern(10), 80), kUnspec);
    step("relay-mode TCP service", Dir::ingress, c.from_client(syn, {}, kRelayPort), kUnspec);
    step("relay-mode TCP service, egress", Dir::egress, c.from_service(Tcp{}, {}, kRelayPort),
         kUnspec);
    Packet other_addr;
    other_addr.ip(c.client(), v6 ? "2001:db8::99" : "192.0.2.99").tcp(c.cport, kPort, syn);
    step("other address", Dir::ingress, other_addr, kUnspec);
    // The service's answer seen on ingress (and the client's SYN on egress): not its way.
    step("service -> client on ingress", Dir::ingress, c.ack(kIsn + 1), kUnspec);
    step("client -> service on egress", Dir::egress, c.syn(), kUnspec);
    Packet udp;
    udp.ip(c.client(), c.service()).udp(c.cport, kPort).payload(pattern(20));
    step("UDP to the service's port", Dir::ingress, udp, kUnspec);
    step("ARP", Dir::ingress, Packet().raw(0x0806, pattern(28)), kUnspec);
    step("ARP, egress", Dir::egress, Packet().raw(0x0806, pattern(28)), kUnspec);
    // Cut inside the TCP header: its ports are not in the frame.
    Bytes cut = pptest::truncated(c.syn().build(), c.syn().l4_offset() + 3);
    Result r = run(Dir::ingress, cut);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.verdict, kUnspec);
    EXPECT_TRUE(r.out == cut) << pptest::describe_difference(cut, r.out);
    EXPECT_FALSE(state(c));
    EXPECT_EQ(all_counters(), AllCounts{});
}

TEST_P(TcpInlineProgTest, MalformedSegmentsOfTheServiceAreDropped) {
    const Conn c = conn();
    const bool v6 = GetParam().family == Family::v6;
    establish(c);
    Packet d = c.data(kIsn + 1 + 100, pattern(100));
    // The IP length claims more than the frame holds: the ports are known, the rest is not.
    Bytes cut = pptest::truncated(d.build(), d.build().size() - 10);
    Result r = run(Dir::ingress, cut);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.verdict, kShot) << "truncated segment";
    // A data offset past the IP payload.
    Packet bad = c.from_client(Tcp{kIsn + 1, 0, Tcp::kAck, 0, 0, Bytes(40, 1)});
    bad.ip_length(static_cast<std::uint16_t>(v6 ? 20 + 20 : 20 + 20 + 20));
    step("data offset past the IP payload", Dir::ingress, bad, kShot);
    EXPECT_EQ(all_counters(), (AllCounts{{kService, counts({{"seen", 4},
                                                            {"inline_conns_new", 1},
                                                            {"inline_mss_clamped", 1},
                                                            {"inline_headers", 1},
                                                            {"malformed_dropped", 2}})}}));
}

std::string variant_name(const ::testing::TestParamInfo<Variant> &info) {
    return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(ChecksumNone, TcpInlineProgTest, ::testing::ValuesIn(variants(Csum::none)),
                         variant_name);
INSTANTIATE_TEST_SUITE_P(ChecksumComplete, TcpInlineProgTest,
                         ::testing::ValuesIn(variants(Csum::complete)), variant_name);

// --- The expectations themselves (no kernel needed) -----------------------------------

TEST(TcpPacketSupport, BuilderAndCheckerAgreeAndCatchEveryFlippedBit) {
    Conn c{Family::v4, PP_HDR_V2, 40000};
    for (const Packet &p :
         {c.syn(), c.data(kIsn + 1, pattern(33)), Conn{Family::v6, PP_HDR_V1, 4000}.syn_ack()}) {
        Bytes f = p.build();
        pptest::FrameCheck fc = pptest::check_frame(f);
        ASSERT_TRUE(fc.ok()) << fc.error;
        EXPECT_EQ(fc.protocol, IPPROTO_TCP);
        EXPECT_EQ(fc.l4_offset, p.l4_offset());
        EXPECT_EQ(fc.tcp_header_length, 20 + p.tcp_fields().options.size());
        EXPECT_EQ(fc.payload, p.payload());
        // Every bit of the TCP segment is covered by its checksum.
        for (std::size_t i = fc.l4_offset; i < f.size(); i++) {
            Bytes g = f;
            g[i] ^= 0x04;
            EXPECT_FALSE(pptest::check_frame(g).ok()) << "flipped a bit at " << i;
        }
    }
}

TEST(TcpPacketSupport, ProxyHeadersFromTheSpec) {
    Addr c4 = Addr::parse("203.0.113.10"), s4 = Addr::parse("192.0.2.1");
    Addr c6 = Addr::parse("2001:db8:100::10"), s6 = Addr::parse("2001:db8::1");
    auto text = [](const Bytes &b) { return std::string(b.begin(), b.end()); };
    EXPECT_EQ(text(pptest::proxy_v1_header(c4, 40000, s4, 443)),
              "PROXY TCP4 203.0.113.10 192.0.2.1 40000 443\r\n");
    EXPECT_EQ(text(pptest::proxy_v1_header(c6, 4000, s6, 443)),
              "PROXY TCP6 2001:db8:100:0:0:0:0:10 2001:db8:0:0:0:0:0:1 4000 443\r\n");
    Bytes v2 = pptest::proxy_v2_header(c4, 40000, s4, 443, pptest::Transport::stream);
    ASSERT_EQ(v2.size(), 28u);
    EXPECT_EQ(v2[12], 0x21);
    EXPECT_EQ(v2[13], 0x11);  // INET, STREAM
    Bytes v2six = pptest::proxy_v2_header(c6, 40000, s6, 443, pptest::Transport::stream);
    ASSERT_EQ(v2six.size(), 52u);
    EXPECT_EQ(v2six[13], 0x21);  // INET6, STREAM
    for (const Variant &v : kVariants) {
        const Conn c{v.family, v.header, v.client_port};
        EXPECT_EQ(c.proxy_header().size(), v.hdr_len) << v.name;
    }
}

}  // namespace
