// The UDP programs (bpf/udp.bpf.c) on crafted frames under BPF_PROG_TEST_RUN: tc ingress
// and egress, and the XDP ingress, which runs the same table of ingress cases and must
// give the same bytes.
//
// Every check compares the EXACT output frame with one built independently by
// tests/support/packet.hpp (the same frame with the header after the UDP header, lengths
// and checksums recomputed from scratch), runs an independent checksum verifier over the
// output, and compares all per-CPU counters of all services, summed over CPUs, with the
// expected ones (every counter not named must stay 0). Each test gets a fresh skeleton.
//
// Table-driven cases (katran's XdpDecapTestFixtures style) cover single-datagram
// behaviour; separate tests cover flows, timeouts, GSO, MTU, truncation at every length,
// paged skbs through a real veth, and a rough cost per run.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <iostream>
#include <random>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "sys/kernel.hpp"
#include "loader/service_key.hpp"
#include "loader/skeleton.hpp"
#include "sys/fd.hpp"
#include "support/netns.hpp"
#include "support/counters.hpp"
#include "support/packet.hpp"
#include "support/privileges.hpp"
#include "support/udp_ports.hpp"
#include "udp.skel.h"

namespace {

using pptest::Addr;
using pptest::Bytes;
using pptest::concat;
using pptest::FrameCheck;
using pptest::Packet;
using pptest::pattern;

// Packets let through leave with TC_ACT_UNSPEC (the next filter on the hook decides,
// TC_ACT_OK when there is none); dropped ones with TC_ACT_SHOT.
constexpr int kUnspec = TC_ACT_UNSPEC;
constexpr int kShot = TC_ACT_SHOT;

// --- Services every test starts with --------------------------------------------------

constexpr std::uint64_t kTimeout = 30'000'000'000ull;  // 30 s: no flow expires by itself

struct ServiceDef {
    const char *addr;
    unsigned prefix;
    std::uint16_t port;
    std::uint32_t id;
    std::uint8_t header;
    std::uint8_t udp_header = PP_UDP_FIRST;
    std::uint8_t on_error = PP_ON_ERROR_DROP;
    std::uint64_t flow_timeout_ns = kTimeout;
};

enum : std::uint32_t {
    kV2 = 1,         // 192.0.2.1:53        v2, first
    kV2Six = 2,      // [2001:db8::1]:53    v2, first
    kSpp = 3,        // 192.0.2.2:5000      SPP
    kSppSix = 4,     // [2001:db8::2]:5000  SPP
    kPass = 5,       // 192.0.2.3:53        v2, on_error = pass
    kPassSix = 6,    // [2001:db8::3]:53    v2, on_error = pass
    kPrefix = 7,     // 198.51.100.0/24:53  v2
    kExact = 8,      // 198.51.100.7:53     SPP (inside the /24)
    kEvery = 9,      // 192.0.2.4:53        v2, every
    kPrefixSix = 10  // [2001:db8:1::/48]:53 v2
};

const std::vector<ServiceDef> kServices = {
    {"192.0.2.1", 32, 53, kV2, PP_HDR_V2},
    {"2001:db8::1", 128, 53, kV2Six, PP_HDR_V2},
    {"192.0.2.2", 32, 5000, kSpp, PP_HDR_SPP},
    {"2001:db8::2", 128, 5000, kSppSix, PP_HDR_SPP},
    {"192.0.2.3", 32, 53, kPass, PP_HDR_V2, PP_UDP_FIRST, PP_ON_ERROR_PASS},
    {"2001:db8::3", 128, 53, kPassSix, PP_HDR_V2, PP_UDP_FIRST, PP_ON_ERROR_PASS},
    {"198.51.100.0", 24, 53, kPrefix, PP_HDR_V2},
    {"198.51.100.7", 32, 53, kExact, PP_HDR_SPP},
    {"192.0.2.4", 32, 53, kEvery, PP_HDR_V2, PP_UDP_EVERY},
    {"2001:db8:1::", 48, 53, kPrefixSix, PP_HDR_V2},
};

constexpr const char *kClient4 = "203.0.113.10";
constexpr const char *kClient6 = "2001:db8:100::10";
constexpr std::uint16_t kClientPort = 40000;

// --- Frames ---------------------------------------------------------------------------

bool is_v6(const char *addr) {
    return std::strchr(addr, ':') != nullptr;
}

// Client -> service.
Packet request(const char *dst, std::uint16_t dport, Bytes payload = pattern(10)) {
    Packet p;
    p.ip(is_v6(dst) ? kClient6 : kClient4, dst).udp(kClientPort, dport).payload(std::move(payload));
    return p;
}

// Service -> client.
Packet reply(const char *src, std::uint16_t sport, Bytes payload) {
    Packet p;
    p.ip(src, is_v6(src) ? kClient6 : kClient4).udp(sport, kClientPort).payload(std::move(payload));
    return p;
}

Bytes v2_of(const Packet &p) {
    return pptest::proxy_v2_header(p.src(), p.sport(), p.dst(), p.dport());
}
Bytes spp_of(const Packet &p) {
    return pptest::spp_header(p.src(), p.sport(), p.dst(), p.dport());
}
// The SPP header a backend echoes on a reply (the request's fields: client, proxy).
Bytes echoed_spp_of(const Packet &reply_packet) {
    return pptest::spp_header(reply_packet.dst(), reply_packet.dport(), reply_packet.src(),
                              reply_packet.sport());
}

// `p` with `header` in front of its payload and no trailing padding, built.
Bytes with_header(Packet p, const Bytes &header) {
    Bytes payload = concat(header, p.payload());
    p.payload(std::move(payload)).padding(0);
    return p.build();
}

std::uint16_t udp_checksum_field(const Packet &p) {
    Bytes f = p.build();
    std::size_t at = p.l4_offset() + 6;
    return static_cast<std::uint16_t>(f.at(at) << 8 | f.at(at + 1));
}

// `p` with payload bytes 2..3 chosen so that, once `header` is in front, the datagram's
// one's-complement sum is zero: its checksum field must then be sent as 0xFFFF (RFC 768;
// 0 would mean "no checksum", which IPv6 does not allow).
Packet zero_sum(Packet p, const Bytes &header) {
    Bytes payload = p.payload();
    payload.at(2) = 0;
    payload.at(3) = 0;
    Packet probe = p;
    probe.payload(concat(header, payload)).padding(0);
    std::uint16_t c = udp_checksum_field(probe);  // adding c makes the sum all ones
    payload[2] = static_cast<std::uint8_t>(c >> 8);
    payload[3] = static_cast<std::uint8_t>(c & 0xFF);
    p.payload(std::move(payload));
    return p;
}

Bytes ipv4_options(std::size_t len) {
    Bytes o = {0x94, 0x04, 0x00, 0x00};  // Router Alert, then No Operation
    o.resize(len, 0x01);
    return o;
}

// IPv6 extension header bodies (after next header and length).
Bytes hop_by_hop_data() {
    return {0x05, 0x02, 0x00, 0x00};  // Router Alert, then Pad1
}
Bytes dest_opts_data() {
    Bytes d = {0x1E, 0x0C};  // an option to skip (type 0x1E), 12 bytes of data
    Bytes v = pattern(12, 7);
    return concat(d, v);
}
// Segment routing header (type 4), segments left `left`, one segment.
Bytes srh_data(std::uint8_t left, const char *segment) {
    Bytes d = {4, left, 0, 0, 0, 0};  // type, segments left, last entry, flags, tag
    Addr a = Addr::parse(segment);
    d.insert(d.end(), a.bytes.begin(), a.bytes.end());
    return d;
}

// --- Counters -------------------------------------------------------------------------

using pptest::AllCounts;
using pptest::Counts;
using pptest::counts;

Counts injected_v2() {
    return counts({{"seen", 1}, {"injected_v2", 1}, {"flows_new", 1}});
}
Counts injected_spp() {
    return counts({{"seen", 1}, {"injected_spp", 1}, {"flows_new", 1}});
}
Counts dropped(const char *reason) {
    return counts({{"seen", 1}, {reason, 1}});
}

// --- Fixture --------------------------------------------------------------------------

enum class Dir { ingress, egress };
// Where ingress runs: the tc program or the XDP one (attach = "xdp"). Egress is tc only.
enum class Hook { tc, xdp };
void PrintTo(Hook h, std::ostream *os) {
    *os << (h == Hook::xdp ? "xdp" : "tc");
}

class UdpProgTest : public ::testing::Test {
  protected:
    struct Result {
        int err = 0;
        int verdict = -1;
        Bytes out;
        std::uint32_t duration_ns = 0;
    };

    void SetUp() override {
        PP_REQUIRE_ROOT();
        skel_.reset(udp_bpf::open_and_load());
        ASSERT_TRUE(skel_) << "open_and_load udp skeleton: " << std::strerror(errno);
        for (const auto &s : kServices) {
            add_service(s);
        }
    }

    void add_service(const ServiceDef &s) {
        auto addr = ppinject::IpAddress::parse(s.addr);
        ASSERT_TRUE(addr) << s.addr;
        pp_service_key key = ppinject::make_service_key(IPPROTO_UDP, *addr, s.prefix, s.port);
        pp_service v{};
        v.id = s.id;
        v.header = s.header;
        v.udp_header = s.udp_header;
        v.on_error = s.on_error;
        v.flow_timeout_ns = s.flow_timeout_ns;
        std::snprintf(v.name, sizeof v.name, "svc%u", s.id);
        ASSERT_EQ(bpf_map__update_elem(skel_->maps.services, &key, sizeof key, &v, sizeof v, 0), 0);
        pp_address_key akey = ppinject::make_address_key(*addr, s.prefix);
        ASSERT_EQ(
            bpf_map__update_elem(skel_->maps.udp_addresses, &akey, sizeof akey, &v, sizeof v, 0),
            0);
        ASSERT_TRUE(pptest::mark_udp_port(bpf_map__fd(skel_->maps.udp_ports), s.port))
            << std::strerror(errno);
    }

    bool xdp(Dir dir) const { return dir == Dir::ingress && hook_ == Hook::xdp; }

    int prog_fd(Dir dir) const {
        if (xdp(dir)) {
            return bpf_program__fd(skel_->progs.udp_xdp);
        }
        return bpf_program__fd(dir == Dir::ingress ? skel_->progs.udp_ingress
                                                   : skel_->progs.udp_egress);
    }

    // At XDP the context is an xdp_md: only the interface the frame arrives on (ctx->ifindex
    // here) carries over. XDP_PASS and XDP_DROP read as the tc verdicts, so that one table
    // serves both hooks.
    Result run(Dir dir, const Bytes &in, const __sk_buff *ctx = nullptr, int repeat = 1) {
        Result r;
        r.out.assign(in.size() + 512, 0);
        __sk_buff ctx_copy{};
        xdp_md xdp_ctx{};
        if (ctx) {
            ctx_copy = *ctx;
            xdp_ctx.ingress_ifindex = ctx->ifindex;
        }
        LIBBPF_OPTS(bpf_test_run_opts, opts);
        opts.data_in = in.data();
        opts.data_size_in = static_cast<__u32>(in.size());
        opts.data_out = r.out.data();
        opts.data_size_out = static_cast<__u32>(r.out.size());
        if (ctx && xdp(dir)) {
            xdp_ctx.data_end = static_cast<__u32>(in.size());
            opts.ctx_in = &xdp_ctx;
            opts.ctx_size_in = sizeof xdp_ctx;
        } else if (ctx) {
            opts.ctx_in = &ctx_copy;
            opts.ctx_size_in = sizeof ctx_copy;
        }
        opts.repeat = repeat;
        r.err = bpf_prog_test_run_opts(prog_fd(dir), &opts);
        r.verdict = static_cast<int>(opts.retval);
        if (xdp(dir)) {
            r.verdict = r.verdict == XDP_PASS   ? kUnspec
                        : r.verdict == XDP_DROP ? kShot
                                                : 1000 + r.verdict;  // neither: never equal
        }
        r.out.resize(r.err == 0 ? opts.data_size_out : 0);
        r.duration_ns = opts.duration;
        return r;
    }

    // Runs and expects the test run itself to work.
    Result run_ok(Dir dir, const Bytes &in, const __sk_buff *ctx = nullptr) {
        Result r = run(dir, in, ctx);
        EXPECT_EQ(r.err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-r.err);
        return r;
    }

    Counts counters(std::uint32_t id) { return pptest::read_counters(skel_->maps.counters, id); }
    AllCounts all_counters() { return pptest::read_all_counters(skel_->maps.counters); }

    pp_flow_key flow_key(const Packet &p) const {
        pp_flow_key k{};
        auto c = p.src().mapped(), s = p.dst().mapped();
        std::memcpy(k.client_addr, c.data(), 16);
        std::memcpy(k.service_addr, s.data(), 16);
        k.client_port = htons(p.sport());
        k.service_port = htons(p.dport());
        return k;
    }

    std::optional<pp_flow> flow(const Packet &p) {
        pp_flow_key k = flow_key(p);
        pp_flow f{};
        if (bpf_map__lookup_elem(skel_->maps.udp_flows, &k, sizeof k, &f, sizeof f, 0) != 0) {
            return std::nullopt;
        }
        return f;
    }

    std::size_t flow_count() {
        std::size_t n = 0;
        pp_flow_key cur{}, next{};
        const pp_flow_key *prev = nullptr;
        while (bpf_map__get_next_key(skel_->maps.udp_flows, prev, &next, sizeof next) == 0) {
            n++;
            cur = next;
            prev = &cur;
        }
        return n;
    }

    // Verdict OK and exactly `want` out, and `want` passes the independent checks.
    void expect_output(const Result &r, const Bytes &want, const std::string &what) {
        EXPECT_EQ(r.verdict, kUnspec) << what;
        EXPECT_TRUE(r.out == want) << what << ": " << pptest::describe_difference(want, r.out);
        FrameCheck fc = pptest::check_frame(r.out);
        EXPECT_TRUE(fc.ok()) << what << ": output fails the independent check: " << fc.error;
    }

    // Datagrams through a 1280-byte MTU device (ifindex).
    void check_mtu_refusals(unsigned ifindex) {
        ASSERT_GT(ifindex, 1u);
        __sk_buff ctx{};
        ctx.ifindex = ifindex;
        struct Size {
            const char *dst;
            std::uint16_t port;
            std::size_t fits;  // largest payload whose IP packet with the header is 1280 bytes
            std::uint32_t id;
            bool spp;
        };
        for (Size s : {Size{"192.0.2.4", 53, 1280 - 20 - 8 - 28, kEvery, false},
                       Size{"2001:db8::1", 53, 1280 - 40 - 8 - 52, kV2Six, false},
                       Size{"192.0.2.2", 5000, 1280 - 20 - 8 - 38, kSpp, true}}) {
            SCOPED_TRACE(s.dst);
            Packet fits = request(s.dst, s.port, pattern(s.fits));
            expect_output(run_ok(Dir::ingress, fits.build(), &ctx),
                          with_header(fits, s.spp ? spp_of(fits) : v2_of(fits)), "fits exactly");
            Packet over = request(s.dst, s.port, pattern(s.fits + 1));
            over.udp(kClientPort + 1, s.port);
            EXPECT_EQ(run_ok(Dir::ingress, over.build(), &ctx).verdict, kShot) << "1 byte over";
            Packet way_over = request(s.dst, s.port, pattern(1300));  // over even without header
            way_over.udp(kClientPort + 2, s.port);
            EXPECT_EQ(run_ok(Dir::ingress, way_over.build(), &ctx).verdict, kShot);
            const char *injected = s.spp ? "injected_spp" : "injected_v2";
            EXPECT_EQ(counters(s.id),
                      counts({{"seen", 3}, {injected, 1}, {"flows_new", 1}, {"mtu_dropped", 2}}));
        }
        // on_error = pass: the datagram goes on bare.
        Packet pass = request("192.0.2.3", 53, pattern(1280 - 20 - 8 - 28 + 1));
        Result rp = run_ok(Dir::ingress, pass.build(), &ctx);
        EXPECT_EQ(rp.verdict, kUnspec);
        EXPECT_TRUE(rp.out == pass.build());
        EXPECT_EQ(counters(kPass), counts({{"seen", 1}, {"error_passed", 1}}));
    }

    // Ingress runs at `h` from now on, with a fresh skeleton (maps and counters empty).
    void use_hook(Hook h) {
        hook_ = h;
        skel_.reset();
        SetUp();
    }

    ppinject::Skeleton<udp_bpf> skel_;
    Hook hook_ = Hook::tc;
};

// --- Table of single-datagram cases ---------------------------------------------------

struct Case {
    std::string name;
    Dir dir = Dir::ingress;
    Bytes in;
    int verdict = kUnspec;
    std::optional<Bytes> out;  // the frame expected when the verdict is OK; none: unchanged
    AllCounts counters;        // every counter not named here must be 0
};

void PrintTo(const Case &c, std::ostream *os) {
    *os << c.name;
}

Case inject(std::string name, Packet p, std::uint32_t id, bool spp = false) {
    Bytes h = spp ? spp_of(p) : v2_of(p);
    return Case{std::move(name), Dir::ingress,      p.build(),
                kUnspec,         with_header(p, h), {{id, spp ? injected_spp() : injected_v2()}}};
}
Case drop(std::string name, Bytes in, std::uint32_t id, const char *reason,
          Dir dir = Dir::ingress) {
    Counts c = dir == Dir::ingress ? dropped(reason) : counts({{reason, 1}});
    return Case{std::move(name), dir, std::move(in), kShot, std::nullopt, {{id, c}}};
}
Case untouched(std::string name, Bytes in, Dir dir = Dir::ingress) {
    return Case{std::move(name), dir, std::move(in), kUnspec, std::nullopt, {}};
}
Case passed_on_error(std::string name, Bytes in, std::uint32_t id) {
    return Case{std::move(name), Dir::ingress, std::move(in),
                kUnspec,         std::nullopt, {{id, counts({{"seen", 1}, {"error_passed", 1}})}}};
}
Case strip(std::string name, Packet bare_reply, std::uint32_t id) {
    Bytes in = with_header(bare_reply, echoed_spp_of(bare_reply));
    return Case{std::move(name),
                Dir::egress,
                in,
                kUnspec,
                bare_reply.padding(0).build(),
                {{id, counts({{"spp_reply_stripped", 1}})}}};
}

std::vector<Case> ingress_cases() {
    std::vector<Case> cs;
    // PROXY v2 and SPP on plain frames.
    cs.push_back(inject("V4V2", request("192.0.2.1", 53), kV2));
    cs.push_back(inject("V6V2", request("2001:db8::1", 53), kV2Six));
    cs.push_back(inject("V4Spp", request("192.0.2.2", 5000), kSpp, true));
    cs.push_back(inject("V6Spp", request("2001:db8::2", 5000), kSppSix, true));
    for (std::size_t ihl = 6; ihl <= 15; ihl++) {
        Packet p = request("192.0.2.1", 53);
        p.ipv4_options(ipv4_options((ihl - 5) * 4));
        cs.push_back(inject("V4OptionsIhl" + std::to_string(ihl), p, kV2));
    }
    {
        Packet p = request("2001:db8::1", 53);
        p.ipv6_ext(IPPROTO_HOPOPTS, hop_by_hop_data())
            .ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data())
            .ipv6_ext(IPPROTO_ROUTING, srh_data(0, "2001:db8::1"));
        cs.push_back(inject("V6HopByHopDestOptsRouting", p, kV2Six));
        p.ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data());  // four: the parser's limit
        cs.push_back(inject("V6FourExtensionHeaders", p, kV2Six));
    }
    {
        // Segments left: the pseudo-header uses the final destination, the header the
        // address the packet is sent to.
        Packet p = request("2001:db8::1", 53);
        p.ipv6_ext(IPPROTO_ROUTING, srh_data(1, "2001:db8:ffff::1"));
        cs.push_back(inject("V6RoutingSegmentsLeft", p, kV2Six));
    }
    {
        Packet p = request("2001:db8::1", 53);
        p.fragment({0, std::nullopt, false, 7});  // atomic fragment: a whole datagram
        cs.push_back(inject("V6AtomicFragment", p, kV2Six));
    }
    {
        Packet p = request("192.0.2.1", 53);
        cs.push_back(inject("V4Vlan8021Q", Packet(p).vlan(0x8100, 10), kV2));
        cs.push_back(inject("V4QinQ", Packet(p).vlan(0x88A8, 100).vlan(0x8100, 10), kV2));
        Packet q = request("2001:db8::2", 5000);
        cs.push_back(inject("V6SppVlan8021Q", Packet(q).vlan(0x8100, 10), kSppSix, true));
        cs.push_back(
            inject("V6SppQinQ", Packet(q).vlan(0x88A8, 100).vlan(0x8100, 10), kSppSix, true));
    }
    {
        // IPv4 "no checksum" stays 0 (builder: checksum 0 with and without the header).
        Packet p = request("192.0.2.1", 53);
        p.no_udp_checksum();
        cs.push_back(inject("V4ZeroChecksumStaysZero", p, kV2));
        Packet q = request("192.0.2.2", 5000);
        q.no_udp_checksum();
        cs.push_back(inject("V4SppZeroChecksumStaysZero", q, kSpp, true));
    }
    {
        // A datagram whose new checksum computes to 0 must carry 0xFFFF.
        Packet p = request("192.0.2.1", 53, pattern(40));
        cs.push_back(inject("V4ChecksumComputingToZero", zero_sum(p, v2_of(p)), kV2));
        Packet q = request("2001:db8::1", 53, pattern(40));
        cs.push_back(inject("V6ChecksumComputingToZero", zero_sum(q, v2_of(q)), kV2Six));
        Packet s = request("2001:db8::2", 5000, pattern(40));
        cs.push_back(inject("V6SppChecksumComputingToZero", zero_sum(s, spp_of(s)), kSppSix, true));
    }
    // Payload sizes: empty, odd, around the 2048-byte shift chunk, and the largest frame
    // BPF_PROG_TEST_RUN takes (3712 bytes here; 8000 bytes: see PagedSkbThroughVeth).
    for (std::size_t n : {0, 1, 2, 3, 1400, 2047, 2048, 2049}) {
        cs.push_back(
            inject("V4Payload" + std::to_string(n), request("192.0.2.1", 53, pattern(n, 1)), kV2));
    }
    for (std::size_t n : {0, 1, 1400, 2049, 3712 - 62}) {
        cs.push_back(inject("V6Payload" + std::to_string(n),
                            request("2001:db8::1", 53, pattern(n, 2)), kV2Six));
    }
    cs.push_back(inject("V4Payload3670", request("192.0.2.1", 53, pattern(3712 - 42, 3)), kV2));
    cs.push_back(
        inject("V4SppPayload3670", request("192.0.2.2", 5000, pattern(3712 - 42, 4)), kSpp, true));
    // Ethernet padding (frame longer than the IP packet) goes; it is not shifted along.
    cs.push_back(inject("V4PaddingTo60", request("192.0.2.1", 53, pattern(1)).padding(17), kV2));
    cs.push_back(inject("V4VlanPaddingTo64",
                        request("192.0.2.1", 53, pattern(1)).vlan(0x8100, 5).padding(17), kV2));
    cs.push_back(inject("V6Trailer", request("2001:db8::1", 53).padding(6), kV2Six));
    cs.push_back(
        inject("V4SppPadding", request("192.0.2.2", 5000, pattern(0)).padding(18), kSpp, true));

    // Fragments of a service: the first one cannot carry a header.
    {
        Packet p = request("192.0.2.1", 53, pattern(100));
        cs.push_back(drop("V4FirstFragment", Packet(p).fragment({0, 48, true, 1}).build(), kV2,
                          "frag_dropped"));
        cs.push_back(untouched("V4MiddleFragment", Packet(p).fragment({48, 24, true, 1}).build()));
        cs.push_back(untouched("V4LastFragment", Packet(p).fragment({48, {}, false, 1}).build()));
        Packet q = request("2001:db8::1", 53, pattern(100));
        cs.push_back(drop("V6FirstFragment", Packet(q).fragment({0, 48, true, 1}).build(), kV2Six,
                          "frag_dropped"));
        cs.push_back(untouched("V6LastFragment", Packet(q).fragment({48, {}, false, 1}).build()));
        cs.push_back(drop("V6FirstFragmentBehindExtHeaders",
                          Packet(q)
                              .ipv6_ext(IPPROTO_HOPOPTS, hop_by_hop_data())
                              .fragment({0, 48, true, 1})
                              .build(),
                          kV2Six, "frag_dropped"));
        Packet s = request("192.0.2.2", 5000, pattern(100));
        cs.push_back(drop("V4SppFirstFragment", Packet(s).fragment({0, 48, true, 1}).build(), kSpp,
                          "frag_dropped"));
        cs.push_back(passed_on_error(
            "V4FirstFragmentOnErrorPass",
            request("192.0.2.3", 53, pattern(100)).fragment({0, 48, true, 1}).build(), kPass));
        cs.push_back(passed_on_error(
            "V6FirstFragmentOnErrorPass",
            request("2001:db8::3", 53, pattern(100)).fragment({0, 48, true, 1}).build(), kPassSix));
        cs.push_back(
            untouched("V4FirstFragmentOfNoService",
                      request("192.0.2.99", 53, pattern(100)).fragment({0, 48, true, 1}).build()));
    }

    // Lengths that do not hold together.
    {
        Packet p = request("192.0.2.1", 53, pattern(20));
        cs.push_back(
            drop("V4UdpLengthPlusOne", Packet(p).udp_length(29).build(), kV2, "malformed_dropped"));
        cs.push_back(drop("V4UdpLengthMinusOne", Packet(p).udp_length(27).build(), kV2,
                          "malformed_dropped"));
        cs.push_back(drop("V4UdpLengthBelowHeader", Packet(p).udp_length(4).build(), kV2,
                          "malformed_dropped"));
        cs.push_back(drop("V4IpLengthPastFrame", Packet(p).ip_length(20 + 28 + 10).build(), kV2,
                          "malformed_dropped"));
        cs.push_back(drop("V4IpLengthShorterThanUdpHeader", Packet(p).ip_length(20 + 4).build(),
                          kV2, "malformed_dropped"));
        Packet q = request("2001:db8::1", 53, pattern(20));
        cs.push_back(drop("V6UdpLengthPlusTwo", Packet(q).udp_length(30).build(), kV2Six,
                          "malformed_dropped"));
        cs.push_back(drop("V6PayloadLengthPastFrame", Packet(q).ip_length(28 + 8).build(), kV2Six,
                          "malformed_dropped"));
        cs.push_back(passed_on_error("V4UdpLengthMismatchOnErrorPass",
                                     request("192.0.2.3", 53, pattern(20)).udp_length(29).build(),
                                     kPass));
    }

    // Client payloads that already look like a header.
    {
        Bytes sig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
        Bytes forged_v2 =
            pptest::proxy_v2_header(Addr::parse("192.0.2.200"), 1, Addr::parse("192.0.2.1"), 53);
        Bytes forged_spp =
            pptest::spp_header(Addr::parse("192.0.2.200"), 1, Addr::parse("192.0.2.2"), 5000);
        cs.push_back(drop("V4SpoofV2",
                          request("192.0.2.1", 53, concat(forged_v2, pattern(9))).build(), kV2,
                          "spoof_dropped"));
        cs.push_back(drop("V4SpoofV2SignatureOnly", request("192.0.2.1", 53, sig).build(), kV2,
                          "spoof_dropped"));
        cs.push_back(inject("V4ElevenSignatureBytesAreData",
                            request("192.0.2.1", 53, Bytes(sig.begin(), sig.end() - 1)), kV2));
        cs.push_back(inject("V4SignatureNotAtStartIsData",
                            request("192.0.2.1", 53, concat({0x00}, sig)), kV2));
        cs.push_back(drop("V4SpoofSppMagic38",
                          request("192.0.2.1", 53, concat({0x56, 0xEC}, pattern(36))).build(), kV2,
                          "spoof_dropped"));
        cs.push_back(inject("V4SppMagic37IsData",
                            request("192.0.2.1", 53, concat({0x56, 0xEC}, pattern(35))), kV2));
        cs.push_back(drop("V4SppServiceSpoofSpp",
                          request("192.0.2.2", 5000, concat(forged_spp, pattern(5))).build(), kSpp,
                          "spoof_dropped"));
        cs.push_back(drop("V4SppServiceSpoofV2",
                          request("192.0.2.2", 5000, concat(forged_v2, pattern(5))).build(), kSpp,
                          "spoof_dropped"));
        cs.push_back(drop("V6SpoofV2",
                          request("2001:db8::1", 53, concat(forged_v2, pattern(9))).build(), kV2Six,
                          "spoof_dropped"));
        // on_error = pass does not let a forged header through.
        cs.push_back(drop("V4SpoofIgnoresOnErrorPass",
                          request("192.0.2.3", 53, concat(forged_v2, pattern(9))).build(), kPass,
                          "spoof_dropped"));
    }

    // Not a service: untouched, no counter moves.
    cs.push_back(untouched("OtherPort", request("192.0.2.1", 54).build()));
    cs.push_back(untouched("OtherAddress", request("192.0.2.99", 53).build()));
    cs.push_back(untouched("V6OtherAddress", request("2001:db8::99", 53).build()));
    cs.push_back(untouched("ServiceAsSource", reply("192.0.2.1", 53, pattern(10)).build()));
    cs.push_back(untouched("Tcp", request("192.0.2.1", 53).l4(IPPROTO_TCP, pattern(20)).build()));
    cs.push_back(
        untouched("V6Tcp", request("2001:db8::1", 53).l4(IPPROTO_TCP, pattern(20)).build()));
    cs.push_back(untouched("Icmp", request("192.0.2.1", 53).l4(IPPROTO_ICMP, pattern(8)).build()));
    cs.push_back(untouched("Arp", Packet().raw(0x0806, pattern(28)).build()));
    cs.push_back(untouched("Lldp", Packet().raw(0x88CC, pattern(46)).build()));
    cs.push_back(untouched("NoServiceWithPadding", request("192.0.2.99", 53).padding(8).build()));

    // Longest prefix: the exact address wins, the rest of the /24 gets the prefix's header.
    cs.push_back(inject("PrefixMember", request("198.51.100.8", 53), kPrefix));
    cs.push_back(inject("PrefixFirstAddress", request("198.51.100.0", 53), kPrefix));
    cs.push_back(inject("PrefixLastAddress", request("198.51.100.255", 53), kPrefix));
    cs.push_back(inject("ExactInsidePrefix", request("198.51.100.7", 53), kExact, true));
    cs.push_back(untouched("OutsidePrefix", request("198.51.101.7", 53).build()));
    cs.push_back(untouched("PrefixOtherPort", request("198.51.100.8", 54).build()));
    cs.push_back(inject("V6PrefixMember", request("2001:db8:1:ffff::99", 53), kPrefixSix));
    cs.push_back(untouched("V6OutsidePrefix", request("2001:db8:2::99", 53).build()));
    return cs;
}

std::vector<Case> egress_cases() {
    std::vector<Case> cs;
    cs.push_back(strip("V4SppReply", reply("192.0.2.2", 5000, pattern(20)), kSpp));
    cs.push_back(strip("V6SppReply", reply("2001:db8::2", 5000, pattern(20)), kSppSix));
    cs.push_back(strip("V4SppReplyEmpty", reply("192.0.2.2", 5000, {}), kSpp));
    cs.push_back(strip("V4SppReplyOdd", reply("192.0.2.2", 5000, pattern(1)), kSpp));
    cs.push_back(strip("V4SppReply2049", reply("192.0.2.2", 5000, pattern(2049)), kSpp));
    cs.push_back(
        strip("V4SppReplyLargest", reply("192.0.2.2", 5000, pattern(3712 - 42 - 38)), kSpp));
    cs.push_back(
        strip("V6SppReplyLargest", reply("2001:db8::2", 5000, pattern(3712 - 62 - 38)), kSppSix));
    cs.push_back(strip("V4SppReplyZeroChecksum",
                       reply("192.0.2.2", 5000, pattern(20)).no_udp_checksum(), kSpp));
    cs.push_back(strip("V4SppReplyChecksumComputingToZero",
                       zero_sum(reply("192.0.2.2", 5000, pattern(40)), {}), kSpp));
    cs.push_back(strip("V6SppReplyChecksumComputingToZero",
                       zero_sum(reply("2001:db8::2", 5000, pattern(40)), {}), kSppSix));
    cs.push_back(strip("V4SppReplyQinQ",
                       reply("192.0.2.2", 5000, pattern(20)).vlan(0x88A8, 1).vlan(0x8100, 2),
                       kSpp));
    cs.push_back(strip("V4SppReplyOptions",
                       reply("192.0.2.2", 5000, pattern(20)).ipv4_options(ipv4_options(40)), kSpp));
    cs.push_back(strip("V6SppReplyExtHeaders",
                       reply("2001:db8::2", 5000, pattern(20))
                           .ipv6_ext(IPPROTO_HOPOPTS, hop_by_hop_data())
                           .ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data()),
                       kSppSix));
    {
        // Trailing padding goes with the header.
        Packet r = reply("192.0.2.2", 5000, pattern(3));
        Bytes in = with_header(r, echoed_spp_of(r));
        in.insert(in.end(), 6, 0xEE);
        cs.push_back(Case{"V4SppReplyPadding",
                          Dir::egress,
                          in,
                          kUnspec,
                          r.build(),
                          {{kSpp, counts({{"spp_reply_stripped", 1}})}}});
    }
    cs.push_back(strip("ExactInsidePrefixReply", reply("198.51.100.7", 53, pattern(20)), kExact));

    // Headers that do not name the client the reply goes to, or no header.
    {
        Packet r = reply("192.0.2.2", 5000, pattern(20));
        auto with = [&r](const Bytes &h) { return with_header(r, h); };
        Bytes good = echoed_spp_of(r);
        Bytes other_addr = pptest::spp_header(Addr::parse("203.0.113.11"), kClientPort,
                                              Addr::parse("192.0.2.2"), 5000);
        Bytes other_port = pptest::spp_header(Addr::parse(kClient4), kClientPort + 1,
                                              Addr::parse("192.0.2.2"), 5000);
        Bytes bad_magic = good;
        bad_magic[1] = 0xED;
        const char *d = "spp_reply_dropped";
        cs.push_back(drop("SppReplyOtherClientAddress", with(other_addr), kSpp, d, Dir::egress));
        cs.push_back(drop("SppReplyOtherClientPort", with(other_port), kSpp, d, Dir::egress));
        cs.push_back(drop("SppReplyBadMagic", with(bad_magic), kSpp, d, Dir::egress));
        cs.push_back(drop("SppReplyNoHeader", reply("192.0.2.2", 5000, pattern(60)).build(), kSpp,
                          d, Dir::egress));
        cs.push_back(drop("SppReplyShort",
                          reply("192.0.2.2", 5000, Bytes(good.begin(), good.end() - 1)).build(),
                          kSpp, d, Dir::egress));
        cs.push_back(
            drop("SppReplyEmpty", reply("192.0.2.2", 5000, {}).build(), kSpp, d, Dir::egress));
        cs.push_back(drop("SppReplyMalformed",
                          Packet(r).payload(concat(good, pattern(20))).udp_length(60).build(), kSpp,
                          d, Dir::egress));
        cs.push_back(
            drop("SppReplyFirstFragment",
                 Packet(r).payload(concat(good, pattern(100))).fragment({0, 64, true, 3}).build(),
                 kSpp, d, Dir::egress));
        Packet r6 = reply("2001:db8::2", 5000, pattern(20));
        Bytes v4_client_in_v6_reply = pptest::spp_header(Addr::parse(kClient4), kClientPort,
                                                         Addr::parse("2001:db8::2"), 5000);
        cs.push_back(drop("V6SppReplyOtherClientAddress", with_header(r6, v4_client_in_v6_reply),
                          kSppSix, d, Dir::egress));
    }
    // Not from an SPP service: untouched, even with something that looks like a header.
    {
        Packet v2r = reply("192.0.2.1", 53, pattern(20));
        cs.push_back(
            untouched("V2ServiceReply", with_header(v2r, echoed_spp_of(v2r)), Dir::egress));
        cs.push_back(untouched("PrefixV2ServiceReply",
                               reply("198.51.100.8", 53, pattern(20)).build(), Dir::egress));
        cs.push_back(untouched("NoServiceReply", reply("192.0.2.99", 5000, pattern(20)).build(),
                               Dir::egress));
        cs.push_back(untouched("SppServiceOtherPort", reply("192.0.2.2", 5001, pattern(20)).build(),
                               Dir::egress));
        cs.push_back(untouched("SppServiceTcp",
                               reply("192.0.2.2", 5000, {}).l4(IPPROTO_TCP, pattern(40)).build(),
                               Dir::egress));
        cs.push_back(
            untouched("RequestToSppService", request("192.0.2.2", 5000).build(), Dir::egress));
        cs.push_back(
            untouched("EgressArp", Packet().raw(0x0806, pattern(28)).build(), Dir::egress));
    }
    return cs;
}

// Each case at each hook it applies to: ingress cases at tc and at XDP, egress at tc.
class UdpProgCase : public UdpProgTest,
                    public ::testing::WithParamInterface<std::tuple<Case, Hook>> {
  protected:
    void SetUp() override {
        hook_ = std::get<1>(GetParam());
        UdpProgTest::SetUp();
    }
};

TEST_P(UdpProgCase, VerdictBytesChecksumsCounters) {
    const Case &c = std::get<0>(GetParam());
    Result r = run_ok(c.dir, c.in);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.verdict, c.verdict);
    if (c.verdict == kUnspec) {
        const Bytes &want = c.out ? *c.out : c.in;
        EXPECT_TRUE(r.out == want) << pptest::describe_difference(want, r.out);
        if (c.out) {
            FrameCheck fc = pptest::check_frame(r.out);
            EXPECT_TRUE(fc.ok()) << "output fails the independent check: " << fc.error;
            // The expectation itself is consistent (builder and checker agree).
            FrameCheck fw = pptest::check_frame(want);
            EXPECT_TRUE(fw.ok()) << "expected frame fails the independent check: " << fw.error;
        }
    }
    EXPECT_EQ(all_counters(), c.counters);
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<Case, Hook>> &info) {
    return std::get<0>(info.param).name + (std::get<1>(info.param) == Hook::xdp ? "Xdp" : "");
}

INSTANTIATE_TEST_SUITE_P(Ingress, UdpProgCase,
                         ::testing::Combine(::testing::ValuesIn(ingress_cases()),
                                            ::testing::Values(Hook::tc, Hook::xdp)),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Egress, UdpProgCase,
                         ::testing::Combine(::testing::ValuesIn(egress_cases()),
                                            ::testing::Values(Hook::tc)),
                         case_name);

// --- Properties of the expectations themselves (no kernel needed) ---------------------

TEST(PacketSupport, OnesComplementSumMatchesRfc1071Example) {
    // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    const std::uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(pptest::ones_complement_sum(data, sizeof data), 0xddf2);
    // A well-known IPv4 header whose checksum is b861.
    Bytes ip = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    EXPECT_EQ(pptest::ones_complement_sum(ip.data(), ip.size()), 0xFFFF);
}

TEST(PacketSupport, HeadersAreByteExactFromTheSpecs) {
    Bytes v2 =
        pptest::proxy_v2_header(Addr::parse("203.0.113.10"), 40000, Addr::parse("192.0.2.1"), 53);
    Bytes want_v2 = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                     0x54, 0x0A, 0x21, 0x12, 0x00, 0x0C, 203,  0,    113,  10,
                     192,  0,    2,    1,    0x9C, 0x40, 0x00, 0x35};
    EXPECT_EQ(v2, want_v2);
    Bytes v2six =
        pptest::proxy_v2_header(Addr::parse("2001:db8::10"), 1, Addr::parse("2001:db8::1"), 2);
    ASSERT_EQ(v2six.size(), 52u);
    EXPECT_EQ(v2six[13], 0x22);
    EXPECT_EQ(v2six[15], 36);
    EXPECT_EQ(v2six[16], 0x20);
    EXPECT_EQ(v2six[31], 0x10);
    EXPECT_EQ(v2six[47], 0x01);
    EXPECT_EQ(v2six[49], 1);
    EXPECT_EQ(v2six[51], 2);
    Bytes spp =
        pptest::spp_header(Addr::parse("203.0.113.10"), 40000, Addr::parse("192.0.2.2"), 5000);
    // clang-format off
    Bytes want_spp = {
        0x56, 0xEC,                                                  // magic
        0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 203, 0, 113, 10,  // client, mapped
        0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 192, 0, 2,   2,   // proxy, mapped
        0x9C, 0x40,                                                  // client port 40000
        0x13, 0x88,                                                  // proxy port 5000
    };
    // clang-format on
    EXPECT_EQ(spp, want_spp);
}

TEST(PacketSupport, BuilderAndCheckerAgreeAndCatchCorruption) {
    Packet p = request("2001:db8::1", 53, pattern(33));
    p.vlan(0x8100, 3)
        .ipv6_ext(IPPROTO_HOPOPTS, hop_by_hop_data())
        .ipv6_ext(IPPROTO_ROUTING, srh_data(1, "2001:db8:ffff::1"));
    Bytes f = p.build();
    FrameCheck fc = pptest::check_frame(f);
    ASSERT_TRUE(fc.ok()) << fc.error;
    EXPECT_EQ(fc.payload, pattern(33));
    EXPECT_EQ(fc.udp_length, 41u);
    EXPECT_EQ(fc.l4_offset, p.l4_offset());
    // IPv6 has no header checksum: only the source and final destination (here a segment
    // of the routing header, not the destination address) in the pseudo-header, the
    // lengths and the UDP datagram are covered.
    std::vector<std::size_t> covered;
    for (std::size_t i = fc.l3_offset + 8; i < fc.l3_offset + 24; i++) {
        covered.push_back(i);
    }
    for (std::size_t i = fc.l4_offset; i < f.size(); i++) {
        covered.push_back(i);
    }
    covered.push_back(fc.l3_offset + 5);  // payload length
    for (std::size_t i : covered) {
        Bytes g = f;
        g[i] ^= 0x10;
        EXPECT_FALSE(pptest::check_frame(g).ok()) << "flipped a bit at " << i;
    }
    Bytes v4 = request("192.0.2.1", 53, pattern(5)).ipv4_options(ipv4_options(8)).build();
    ASSERT_TRUE(pptest::check_frame(v4).ok());
    for (std::size_t i = 14; i < v4.size(); i++) {
        Bytes g = v4;
        g[i] ^= 0x01;
        EXPECT_FALSE(pptest::check_frame(g).ok()) << "flipped a bit at " << i;
    }
    Packet z = request("2001:db8::1", 53, pattern(40));
    Packet zs = zero_sum(z, v2_of(z));
    Packet zo = zs;
    zo.payload(concat(v2_of(zs), zs.payload()));
    EXPECT_EQ(udp_checksum_field(zo), 0xFFFF);
}

// --- Flows ----------------------------------------------------------------------------

TEST_F(UdpProgTest, FirstModeInjectsOnlyTheFirstDatagramOfAFlow) {
    Packet p = request("192.0.2.1", 53, pattern(10));
    expect_output(run_ok(Dir::ingress, p.build()), with_header(p, v2_of(p)), "first datagram");
    Result second = run_ok(Dir::ingress, p.build());
    EXPECT_EQ(second.verdict, kUnspec);
    EXPECT_TRUE(second.out == p.build()) << pptest::describe_difference(p.build(), second.out);
    EXPECT_EQ(
        all_counters(),
        (AllCounts{
            {kV2, counts({{"seen", 2}, {"injected_v2", 1}, {"flows_new", 1}, {"passed", 1}})}}));
    auto f = flow(p);
    ASSERT_TRUE(f) << "no udp_flows entry for the 5-tuple";
    EXPECT_EQ(f->packets, 2u);
    EXPECT_EQ(f->bytes, 20u);
    EXPECT_EQ(f->service_id, kV2);
    EXPECT_GT(f->created_ns, 0u);
    EXPECT_LE(f->created_ns, f->last_seen_ns);

    // Another source port is another flow.
    Packet other = request("192.0.2.1", 53, pattern(10));
    other.udp(kClientPort + 1, 53);
    expect_output(run_ok(Dir::ingress, other.build()), with_header(other, v2_of(other)),
                  "new source port");
    EXPECT_EQ(flow_count(), 2u);
    EXPECT_EQ(counters(kV2),
              counts({{"seen", 3}, {"injected_v2", 2}, {"flows_new", 2}, {"passed", 1}}));
}

// A flow table of 128 flows under a flood of 4,000 new source ports (what a small
// udp_max_flows meets): a `first` flow quiet through the flood is evicted and its next
// datagram gets a second header (what backends of `first` services must tolerate, as after
// an idle timeout); one that sends a datagram every 8 flood datagrams survives (the LRU
// keeps what is used: 0 second headers here; the count is printed). A flood of forged headers is
// dropped before the table: it is counted and not one entry changes.
TEST_F(UdpProgTest, FullFlowTableUnderAFloodOfNewPorts) {
    skel_.reset(udp_bpf::open());
    ASSERT_TRUE(skel_) << std::strerror(errno);
    ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.udp_flows, 128), 0);
    ASSERT_EQ(udp_bpf::load(skel_.get()), 0) << std::strerror(errno);
    for (const auto &s : kServices) {
        add_service(s);
    }
    auto datagram = [](std::uint16_t sport, Bytes payload = pattern(10)) {
        Packet p = request("192.0.2.1", 53, std::move(payload));
        p.udp(sport, 53);
        return p.build();
    };
    auto headed = [&](std::uint16_t sport) {  // whether this datagram got a header
        Bytes in = datagram(sport);
        Result r = run_ok(Dir::ingress, in);
        EXPECT_EQ(r.verdict, kUnspec);
        return r.out != in;
    };
    const std::uint16_t quiet = 1000, busy = 1001;
    ASSERT_TRUE(headed(quiet));
    ASSERT_TRUE(headed(busy));
    int busy_again = 0;
    for (std::uint16_t i = 0; i < 4000; i++) {
        ASSERT_TRUE(headed(static_cast<std::uint16_t>(10000 + i)));  // each a new flow
        if (i % 8 == 7) {
            busy_again += headed(busy);
        }
    }
    EXPECT_LE(flow_count(), 128u);
    EXPECT_TRUE(headed(quiet)) << "a flow quiet through the flood was not evicted";
    std::cout << "flow table of 128, 4000 new flows: a flow sending every 8th datagram got "
              << busy_again << " more headers in 500 datagrams\n";

    Counts before = counters(kV2);
    std::size_t flows = flow_count();
    Bytes forged =
        pptest::proxy_v2_header(Addr::parse("198.51.100.66"), 1, Addr::parse("192.0.2.1"), 53);
    for (std::uint16_t i = 0; i < 10000; i++) {
        ASSERT_EQ(run_ok(Dir::ingress, datagram(static_cast<std::uint16_t>(20000 + i),
                                                concat(forged, pattern(4))))
                      .verdict,
                  kShot);
    }
    Counts after = counters(kV2);
    EXPECT_EQ(after["spoof_dropped"] - before["spoof_dropped"], 10000u);
    EXPECT_EQ(after["flows_new"], before["flows_new"]);
    EXPECT_EQ(flow_count(), flows);
    EXPECT_FALSE(headed(busy)) << "the forged flood evicted a live flow";
}

TEST_F(UdpProgTest, FlowStartsAgainAfterItsIdleTimeout) {
    add_service({"192.0.2.5", 32, 53, 11, PP_HDR_V2, PP_UDP_FIRST, PP_ON_ERROR_DROP, 1'000'000});
    Packet p = request("192.0.2.5", 53, pattern(10));
    expect_output(run_ok(Dir::ingress, p.build()), with_header(p, v2_of(p)), "first");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // > timeout + 2 coarse ticks
    expect_output(run_ok(Dir::ingress, p.build()), with_header(p, v2_of(p)), "after idle");
    EXPECT_EQ(all_counters(),
              (AllCounts{{11, counts({{"seen", 2}, {"injected_v2", 2}, {"flows_new", 2}})}}));
    auto f = flow(p);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->packets, 1u) << "the flow restarted";
}

TEST_F(UdpProgTest, EveryModeInjectsEveryDatagram) {
    Packet p = request("192.0.2.4", 53, pattern(10));
    for (int i = 0; i < 3; i++) {
        expect_output(run_ok(Dir::ingress, p.build()), with_header(p, v2_of(p)),
                      "datagram " + std::to_string(i));
    }
    EXPECT_EQ(all_counters(),
              (AllCounts{{kEvery, counts({{"seen", 3}, {"injected_v2", 3}, {"flows_new", 1}})}}));
    auto f = flow(p);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->packets, 3u);
}

TEST_F(UdpProgTest, SppGoesOnEveryDatagram) {
    Packet p = request("2001:db8::2", 5000, pattern(10));
    for (int i = 0; i < 2; i++) {
        expect_output(run_ok(Dir::ingress, p.build()), with_header(p, spp_of(p)),
                      "datagram " + std::to_string(i));
    }
    EXPECT_EQ(all_counters(),
              (AllCounts{{kSppSix, counts({{"seen", 2}, {"injected_spp", 2}, {"flows_new", 1}})}}));
}

// --- GSO ------------------------------------------------------------------------------

TEST_F(UdpProgTest, GsoTrainsNeverShareOneHeader) {
    __sk_buff gso{};
    gso.gso_segs = 2;
    gso.gso_size = 1000;
    Packet v2 = request("192.0.2.1", 53, pattern(2000));
    Result r = run_ok(Dir::ingress, v2.build(), &gso);
    EXPECT_EQ(r.verdict, kShot);
    Packet spp = request("192.0.2.2", 5000, pattern(2000));
    EXPECT_EQ(run_ok(Dir::ingress, spp.build(), &gso).verdict, kShot);
    Packet pass = request("192.0.2.3", 53, pattern(2000));
    Result rp = run_ok(Dir::ingress, pass.build(), &gso);
    EXPECT_EQ(rp.verdict, kUnspec);
    EXPECT_TRUE(rp.out == pass.build()) << pptest::describe_difference(pass.build(), rp.out);
    EXPECT_EQ(all_counters(), (AllCounts{{kV2, dropped("gso_dropped")},
                                         {kSpp, dropped("gso_dropped")},
                                         {kPass, counts({{"seen", 1}, {"error_passed", 1}})}}));

    // A live flow in `first` mode needs no header: its train passes.
    Packet small = request("192.0.2.1", 53, pattern(10));
    expect_output(run_ok(Dir::ingress, small.build()), with_header(small, v2_of(small)), "first");
    Result later = run_ok(Dir::ingress, small.build(), &gso);
    EXPECT_EQ(later.verdict, kUnspec);
    EXPECT_TRUE(later.out == small.build());
    // `every` needs one on each datagram: still refused.
    Packet every = request("192.0.2.4", 53, pattern(10));
    expect_output(run_ok(Dir::ingress, every.build()), with_header(every, v2_of(every)), "first");
    EXPECT_EQ(run_ok(Dir::ingress, every.build(), &gso).verdict, kShot);
    EXPECT_EQ(counters(kV2), counts({{"seen", 3},
                                     {"gso_dropped", 1},
                                     {"injected_v2", 1},
                                     {"flows_new", 1},
                                     {"passed", 1}}));
    EXPECT_EQ(counters(kEvery),
              counts({{"seen", 2}, {"gso_dropped", 1}, {"injected_v2", 1}, {"flows_new", 1}}));

    // Replies: a GSO train from an SPP service cannot be stripped datagram by datagram.
    Packet rep = reply("192.0.2.2", 5000, pattern(20));
    EXPECT_EQ(run_ok(Dir::egress, with_header(rep, echoed_spp_of(rep)), &gso).verdict, kShot);
    EXPECT_EQ(counters(kSpp)["spp_reply_dropped"], 1u);
}

// --- MTU ------------------------------------------------------------------------------

TEST_F(UdpProgTest, HeaderThatWouldExceedTheMtuIsRefused) {
    // test_run makes ctx->ifindex (looked up in the caller's namespace) the skb's device,
    // and bpf_check_mtu uses its MTU; at XDP the same interface is the frame's ingress
    // device (xdp_md.ingress_ifindex). This kernel has no dummy driver: a veth in a
    // namespace of its own serves, removed with the namespace even when the test fails.
    pptest::Netns ns("mtu");
    ns.exec("ip link add mtu0 type veth peer name mtu1 && ip link set mtu0 mtu 1280 up");
    for (Hook h : {Hook::tc, Hook::xdp}) {
        SCOPED_TRACE(h == Hook::xdp ? "xdp" : "tc");
        use_hook(h);
        ns.run_inside([&] { check_mtu_refusals(if_nametoindex("mtu0")); });
    }
}

// The MTU concerns the IP packet: VLAN tags in the frame do not count against it.
TEST_F(UdpProgTest, TaggedDatagramThatFitsTheMtuGetsItsHeader) {
    pptest::Netns ns("mtuvlan");
    ns.exec("ip link add mtu0 type veth peer name mtu1 && ip link set mtu0 mtu 1280 up");
    for (Hook h : {Hook::tc, Hook::xdp}) {
        SCOPED_TRACE(h == Hook::xdp ? "xdp" : "tc");
        use_hook(h);
        ns.run_inside([&] {
            __sk_buff ctx{};
            ctx.ifindex = if_nametoindex("mtu0");
            ASSERT_GT(ctx.ifindex, 1u);
            Packet p = request("192.0.2.4", 53, pattern(1280 - 20 - 8 - 28)).vlan(0x8100, 7);
            expect_output(run_ok(Dir::ingress, p.build(), &ctx), with_header(p, v2_of(p)),
                          "IP packet of exactly the MTU with the header, one 802.1Q tag");
        });
        EXPECT_EQ(all_counters(), (AllCounts{{kEvery, injected_v2()}}));
    }
}

// A datagram to a service must not reach it bare with a client-made header as its payload,
// however many IPv6 extension headers come before the UDP header. parse() walks four
// extension headers within the first 256 bytes; Linux delivers longer chains to a UDP
// socket (checked by hand with AF_PACKET on a veth). Without a port there is no service
// to look up, so such datagrams are matched to a service by destination address alone and
// always dropped (on_error = "pass" included: the spoof check cannot run on them).
TEST_F(UdpProgTest, ForgedHeaderBehindLongExtensionChainIsNotPassedBare) {
    auto chains = [](const char *dst) {
        Bytes forged =
            pptest::proxy_v2_header(Addr::parse("2001:db8:bad::1"), 1, Addr::parse(dst), 53);
        Packet base = request(dst, 53, concat(forged, pattern(9)));
        Packet five = base;  // hop-by-hop, three destination options, an atomic fragment
        five.ipv6_ext(IPPROTO_HOPOPTS, hop_by_hop_data())
            .ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data())
            .ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data())
            .ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data())
            .fragment({0, std::nullopt, false, 9});
        Bytes big_opts = {0x1E, 255};  // two options to skip: 257 + 5 bytes
        Bytes filler = pattern(255, 3);
        big_opts.insert(big_opts.end(), filler.begin(), filler.end());
        big_opts.insert(big_opts.end(), {0x1E, 3, 1, 2, 3});
        Packet long_one = base;  // one 264-byte destination options header
        long_one.ipv6_ext(IPPROTO_DSTOPTS, big_opts);
        return std::vector<std::pair<const char *, Packet>>{
            {"five extension headers", five}, {"264-byte destination options", long_one}};
    };
    // An exact service, an on_error = "pass" service, a port of neither, inside a prefix.
    for (const char *dst : {"2001:db8::1", "2001:db8::3", "2001:db8:1::99"}) {
        for (const auto &[what, p] : chains(dst)) {
            SCOPED_TRACE(std::string(what) + " to " + dst);
            Bytes in = p.build();
            ASSERT_TRUE(pptest::check_frame(in).ok());
            EXPECT_EQ(run_ok(Dir::ingress, in).verdict, kShot);
        }
    }
    Counts two = counts({{"seen", 2}, {"chain_dropped", 2}});
    EXPECT_EQ(all_counters(), (AllCounts{{kV2Six, two}, {kPassSix, two}, {kPrefixSix, two}}));

    // Long chains to other addresses, and replies leaving a service, are not ours to judge.
    for (const auto &[what, p] : chains("2001:db8:2::1")) {
        SCOPED_TRACE(what);
        Bytes in = p.build();
        Result r = run_ok(Dir::ingress, in);
        EXPECT_EQ(r.verdict, kUnspec);
        EXPECT_EQ(r.out, in);
    }
    EXPECT_EQ(all_counters(), (AllCounts{{kV2Six, two}, {kPassSix, two}, {kPrefixSix, two}}));
}

// --- Random and mutated frames --------------------------------------------------------

// BPF_PROG_TEST_RUN itself refuses frames shorter than an Ethernet header, and for an
// untagged IPv4/IPv6 EtherType shorter than Ethernet + the fixed IP header (6.18).
bool test_run_refuses(const Bytes &cut) {
    if (cut.size() < 14) {
        return true;
    }
    std::uint16_t type = static_cast<std::uint16_t>(cut[12] << 8 | cut[13]);
    return (type == 0x0800 && cut.size() < 14 + 20) || (type == 0x86DD && cut.size() < 14 + 40);
}

// A counter summed over the services of kServices.
std::uint64_t total(const AllCounts &all, std::initializer_list<const char *> names) {
    std::uint64_t n = 0;
    for (const auto &[id, c] : all) {
        for (const char *name : names) {
            if (auto it = c.find(name); it != c.end()) {
                n += it->second;
            }
        }
    }
    return n;
}

// The destination address (16 bytes, IPv4 mapped) and port of a frame check_frame parsed.
std::pair<ppinject::IpAddress, std::uint16_t> destination_of(const Bytes &f, const FrameCheck &fc) {
    std::array<std::uint8_t, 16> a{};
    if (fc.ipv6) {
        std::copy_n(f.begin() + static_cast<long>(fc.l3_offset) + 24, 16, a.begin());
    } else {
        a[10] = a[11] = 0xFF;
        std::copy_n(f.begin() + static_cast<long>(fc.l3_offset) + 16, 4, a.begin() + 12);
    }
    auto port = static_cast<std::uint16_t>(f[fc.l4_offset + 2] << 8 | f[fc.l4_offset + 3]);
    return {ppinject::IpAddress::v6(a), port};
}

// 20,000 frames made from valid ones (every service, VLAN tags, IPv6 extension headers,
// forged headers, SPP replies) by random byte changes, bit flips, truncations, appended
// bytes and inserted VLAN tags (fixed seed): whatever comes in, a changed frame leaves with
// lengths and checksums that verify and one injection or strip counted, a dropped one is
// counted as one drop, and a datagram that already starts with a PROXY v2 signature or
// SPP magic never leaves unchanged towards a service that puts a header on every datagram.
TEST_F(UdpProgTest, MutatedFramesKeepTheInvariants) {
    struct Seed {
        Dir dir;
        Bytes frame;
    };
    std::vector<Seed> seeds;
    for (const ServiceDef &s : kServices) {
        Packet p = request(s.addr, s.port, pattern(40));
        seeds.push_back({Dir::ingress, p.build()});
        Packet tagged = p;
        tagged.vlan(0x8100, 7).vlan(0x88A8, 9);
        seeds.push_back({Dir::ingress, tagged.build()});
        Bytes forged = pptest::proxy_v2_header(Addr::parse(is_v6(s.addr) ? kClient6 : kClient4), 1,
                                               Addr::parse(s.addr), s.port);
        seeds.push_back(
            {Dir::ingress, request(s.addr, s.port, concat(forged, pattern(9))).build()});
        if (s.header == PP_HDR_SPP) {
            Packet r = reply(s.addr, s.port, pattern(20));
            seeds.push_back(
                {Dir::egress, r.payload(concat(echoed_spp_of(r), pattern(20))).build()});
        }
    }
    Packet chain = request("2001:db8::2", 5000, concat(Bytes{0x56, 0xEC}, pattern(40)));
    chain.ipv6_ext(IPPROTO_HOPOPTS, hop_by_hop_data()).ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data());
    seeds.push_back({Dir::ingress, chain.build()});

    const std::initializer_list<const char *> kDrops = {
        "spoof_dropped", "frag_dropped", "malformed_dropped", "grow_failed",
        "mtu_dropped",   "gso_dropped",  "spp_reply_dropped", "chain_dropped"};
    const std::initializer_list<const char *> kChanges = {"injected_v2", "injected_spp",
                                                          "spp_reply_stripped"};
    const Bytes v2_signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    std::mt19937 rng(20261204);
    auto service_counters = [&] {  // only the services there are: 10 lookups, not 256
        AllCounts all;
        for (const ServiceDef &s : kServices) {
            all[s.id] = counters(s.id);
        }
        return all;
    };
    AllCounts before = service_counters();
    int changed = 0, valid_changed = 0, dropped_n = 0, unchanged = 0;
    for (int i = 0; i < 20000 && !HasFailure(); i++) {
        const Seed &seed = seeds[rng() % seeds.size()];
        Bytes in = seed.frame;
        for (int e = 0, edits = 1 + static_cast<int>(rng() % 3); e < edits; e++) {
            std::size_t at = rng() % in.size();
            switch (rng() % 5) {
                case 0:
                    in[at] = static_cast<std::uint8_t>(rng());
                    break;
                case 1:
                    in[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
                    break;
                case 2:
                    in.resize(std::max<std::size_t>(at, ETH_HLEN));
                    break;
                case 3:
                    for (std::size_t n = rng() % 64; n > 0; n--) {
                        in.push_back(static_cast<std::uint8_t>(rng()));
                    }
                    break;
                default:  // a VLAN tag after the MAC addresses
                    in.insert(in.begin() + 12,
                              {0x81, 0x00, 0x00, static_cast<std::uint8_t>(rng())});
                    break;
            }
        }
        SCOPED_TRACE("frame " + std::to_string(i) + ":\n" + pptest::hex(in));
        if (test_run_refuses(in)) {
            continue;  // never reaches the program
        }
        Result r = run_ok(seed.dir, in);
        AllCounts after = service_counters();
        std::uint64_t drops = total(after, kDrops) - total(before, kDrops);
        std::uint64_t changes = total(after, kChanges) - total(before, kChanges);
        before = std::move(after);
        ASSERT_TRUE(r.verdict == kUnspec || r.verdict == kShot) << r.verdict;
        if (r.verdict == kShot) {
            dropped_n++;
            ASSERT_EQ(drops, 1u) << "a dropped frame is counted once";
            ASSERT_EQ(changes, 0u);
            continue;
        }
        ASSERT_EQ(drops, 0u) << "a frame let through is not counted as dropped";
        if (r.out != in) {
            changed++;
            // Checksums are updated incrementally: one that was right stays right, one that
            // was wrong stays wrong (the receiver drops it), never fixed or broken here.
            FrameCheck fin = pptest::check_frame(in), fout = pptest::check_frame(r.out);
            ASSERT_TRUE(fin.parsed) << "a frame that does not parse was changed";
            ASSERT_TRUE(fout.parsed && fout.lengths_ok && fout.trailing == 0)
                << "changed frame fails the independent check: " << fout.error << "\n"
                << pptest::hex(r.out);
            ASSERT_EQ(fout.ip_checksum_ok, fin.ip_checksum_ok) << pptest::hex(r.out);
            ASSERT_EQ(fout.l4_checksum_ok, fin.l4_checksum_ok) << pptest::hex(r.out);
            valid_changed += fin.ok();
            ASSERT_EQ(changes, 1u) << "a changed frame is one injection or strip";
            continue;
        }
        unchanged++;
        ASSERT_EQ(changes, 0u) << "an injection or strip that left the frame as it was";
        // A forged header towards a service that heads every datagram must not pass bare.
        // (The program walks at most two VLAN tags, as bpf/udp.bpf.c says; a frame with more
        // is not looked at.)
        FrameCheck fc = pptest::check_frame(in);
        if (seed.dir != Dir::ingress || !fc.ok() || fc.payload.size() < v2_signature.size() ||
            fc.l3_offset > ETH_HLEN + 2 * 4) {
            continue;
        }
        bool forged = std::equal(v2_signature.begin(), v2_signature.end(), fc.payload.begin()) ||
                      (fc.payload[0] == 0x56 && fc.payload[1] == 0xEC);
        auto [dst, port] = destination_of(in, fc);
        for (const ServiceDef &s : kServices) {
            bool every = s.header == PP_HDR_SPP || s.udp_header == PP_UDP_EVERY;
            if (forged && every && s.on_error == PP_ON_ERROR_DROP && s.port == port &&
                *ppinject::IpAddress::parse(s.addr) == dst) {
                ADD_FAILURE() << "a forged header passed bare to service " << s.id;
            }
        }
    }
    EXPECT_EQ(all_counters().size(), kServices.size()) << "counted for a service that is none";
    std::cout << "mutated frames: " << changed << " changed (" << valid_changed
              << " of them valid before), " << dropped_n << " dropped, " << unchanged
              << " unchanged\n";
    EXPECT_GT(valid_changed, 1000);  // the mutations leave enough frames valid to be injected
    EXPECT_GT(dropped_n, 1000);
}

// --- Truncation -----------------------------------------------------------------------

TEST_F(UdpProgTest, TruncatedAtEveryLength) {
    struct Frame {
        const char *what;
        Packet p;
        Dir dir;
        std::uint32_t id;  // 0: no service
        const char *drop_counter;
    };
    Packet r = reply("192.0.2.2", 5000, pattern(9));
    std::vector<Frame> frames = {
        {"v4", request("192.0.2.1", 53, pattern(21)), Dir::ingress, kV2, "malformed_dropped"},
        {"v4 options",
         request("192.0.2.1", 53, pattern(21)).ipv4_options(ipv4_options(12)).vlan(0x8100, 1),
         Dir::ingress, kV2, "malformed_dropped"},
        {"v6", request("2001:db8::1", 53, pattern(21)), Dir::ingress, kV2Six, "malformed_dropped"},
        {"v6 ext qinq",
         request("2001:db8::1", 53, pattern(21))
             .vlan(0x88A8, 1)
             .vlan(0x8100, 2)
             .ipv6_ext(IPPROTO_HOPOPTS, hop_by_hop_data())
             .ipv6_ext(IPPROTO_DSTOPTS, dest_opts_data())
             .ipv6_ext(IPPROTO_ROUTING, srh_data(0, "2001:db8::1")),
         Dir::ingress, kV2Six, "malformed_dropped"},
        {"spp vlan", request("192.0.2.2", 5000, pattern(21)).vlan(0x8100, 1), Dir::ingress, kSpp,
         "malformed_dropped"},
        {"no service", request("192.0.2.99", 53, pattern(21)).vlan(0x8100, 1), Dir::ingress, 0,
         nullptr},
        {"spp reply", Packet(r).payload(concat(echoed_spp_of(r), r.payload())).vlan(0x8100, 1),
         Dir::egress, kSpp, "spp_reply_dropped"},
    };
    for (const Frame &f : frames) {
        SCOPED_TRACE(f.what);
        Bytes full = f.p.build();
        std::size_t udp_end = f.p.l4_offset() + 8;
        std::uint64_t n_dropped = 0;
        for (std::size_t len = 0; len < full.size(); len++) {
            Bytes cut = pptest::truncated(full, len);
            Result res = run(f.dir, cut);
            if (test_run_refuses(cut)) {
                EXPECT_EQ(res.err, -EINVAL) << "cut at " << len;
                continue;
            }
            ASSERT_EQ(res.err, 0) << "cut at " << len << ": " << std::strerror(-res.err);
            if (f.id != 0 && len >= udp_end) {
                // The UDP header (ports) is whole: a datagram of the service, cut short.
                EXPECT_EQ(res.verdict, kShot) << "cut at " << len;
                n_dropped++;
            } else {
                // Not enough to know the ports: not ours to judge, untouched.
                EXPECT_EQ(res.verdict, kUnspec) << "cut at " << len;
                EXPECT_TRUE(res.out == cut) << "cut at " << len;
            }
        }
        EXPECT_EQ(n_dropped, f.id != 0 ? full.size() - udp_end : 0);
        if (f.id != 0) {
            Counts want = f.dir == Dir::ingress
                              ? counts({{"seen", n_dropped}, {f.drop_counter, n_dropped}})
                              : counts({{f.drop_counter, n_dropped}});
            EXPECT_EQ(counters(f.id), want);
            // The next test frame starts from zero.
            std::uint32_t id = f.id;
            int ncpu = libbpf_num_possible_cpus();
            std::vector<pp_counters> zero(static_cast<std::size_t>(ncpu));
            ASSERT_EQ(bpf_map__update_elem(skel_->maps.counters, &id, sizeof id, zero.data(),
                                           zero.size() * sizeof(pp_counters), 0),
                      0);
        }
        EXPECT_EQ(all_counters(), AllCounts{});
        EXPECT_EQ(flow_count(), 0u);
    }
}

// --- Paged skbs through a real veth: 8000-byte datagrams --------------------------------

// The first frame received on `fd` within `timeout_ms` whose UDP ports are these.
std::optional<Bytes> receive_udp(int fd, std::uint16_t sport, std::uint16_t dport,
                                 int timeout_ms = 2000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<std::uint8_t> buf(70000);
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) != 1) {
            continue;
        }
        ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) {
            continue;
        }
        Bytes f(buf.begin(), buf.begin() + n);
        FrameCheck fc = pptest::check_frame(f);
        if (fc.parsed && fc.l4_offset + 4 <= f.size() &&
            (f[fc.l4_offset] << 8 | f[fc.l4_offset + 1]) == sport &&
            (f[fc.l4_offset + 2] << 8 | f[fc.l4_offset + 3]) == dport) {
            return f;
        }
    }
    return std::nullopt;
}

TEST_F(UdpProgTest, PagedSkbThroughVeth) {
    // BPF_PROG_TEST_RUN only takes linear frames of up to ~3.7 KB. Bigger datagrams go
    // through a veth pair: the program sits on pa's egress (the same parser and rewrite as
    // on a client interface's ingress), an AF_PACKET socket sends on pa (the skb is paged
    // past the Ethernet header) and another captures on pb. The destination MAC is not
    // pb's, so pb's stack drops the frame after the capture.
    pptest::Netns ns("udpprog");
    ns.exec(
        "ip link add pa type veth peer name pb && ip link set pa mtu 20000 up && "
        "ip link set pb mtu 20000 up");
    ns.run_inside([&] {
        int pa = static_cast<int>(if_nametoindex("pa"));
        int pb = static_cast<int>(if_nametoindex("pb"));
        ASSERT_GT(pa, 0);
        ASSERT_GT(pb, 0);
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = pa, .attach_point = BPF_TC_EGRESS);
        int err = bpf_tc_hook_create(&hook);
        ASSERT_TRUE(err == 0 || err == -EEXIST) << std::strerror(-err);
        LIBBPF_OPTS(bpf_tc_opts, tc, .prog_fd = prog_fd(Dir::ingress));
        ASSERT_EQ(bpf_tc_attach(&hook, &tc), 0);

        ppinject::Fd tx(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
        ppinject::Fd rx(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
        ASSERT_GE(tx.get(), 0);
        ASSERT_GE(rx.get(), 0);
        sockaddr_ll bind_rx{};
        bind_rx.sll_family = AF_PACKET;
        bind_rx.sll_protocol = htons(ETH_P_ALL);
        bind_rx.sll_ifindex = pb;
        ASSERT_EQ(bind(rx.get(), reinterpret_cast<sockaddr *>(&bind_rx), sizeof bind_rx), 0);
        // A frame our program drops comes back to the sender as ENOBUFS (NET_XMIT_DROP).
        auto send_frame = [&](const Bytes &f, bool may_be_dropped = false) {
            sockaddr_ll to{};
            to.sll_family = AF_PACKET;
            to.sll_ifindex = pa;
            to.sll_halen = 6;
            std::memcpy(to.sll_addr, f.data(), 6);
            ssize_t n = sendto(tx.get(), f.data(), f.size(), 0, reinterpret_cast<sockaddr *>(&to),
                               sizeof to);
            if (!(may_be_dropped && n < 0 && errno == ENOBUFS)) {
                EXPECT_EQ(n, static_cast<ssize_t>(f.size())) << std::strerror(errno);
            }
        };

        struct Big {
            const char *dst;
            std::uint16_t port;
            std::size_t size;
            bool spp;
        };
        std::uint16_t sport = 41000;
        for (Big b : {Big{"192.0.2.1", 53, 8000, false}, Big{"2001:db8::1", 53, 8000, false},
                      Big{"192.0.2.2", 5000, 8001, true}, Big{"192.0.2.4", 53, 15000, false}}) {
            SCOPED_TRACE(b.dst);
            Packet p = request(b.dst, b.port, pattern(b.size, 9));
            p.udp(++sport, b.port);
            send_frame(p.build());
            auto got = receive_udp(rx.get(), sport, b.port);
            ASSERT_TRUE(got) << "nothing arrived on pb";
            Bytes want = with_header(p, b.spp ? spp_of(p) : v2_of(p));
            EXPECT_TRUE(*got == want) << pptest::describe_difference(want, *got);
            FrameCheck fc = pptest::check_frame(*got);
            EXPECT_TRUE(fc.ok()) << fc.error;
        }
        // bpf_skb_change_tail grows an skb to at most SKB_MAX_ALLOC (16 KiB minus the
        // shared info): a bigger datagram cannot get its header and is dropped.
        Packet huge = request("192.0.2.4", 53, pattern(16100, 9));
        huge.udp(++sport, 53);
        send_frame(huge.build(), true);
        EXPECT_FALSE(receive_udp(rx.get(), sport, 53, 300)) << "a 16 KB datagram went through";

        // The forged-header check reads the payload's first 12 bytes in place when the
        // linear part holds them, else through bpf_skb_load_bytes. parse() pulls 256 bytes
        // into the linear part; behind a 184-byte destination options header the payload
        // starts at byte 246, so its first 12 bytes straddle the end of what was pulled.
        // (8000-byte payloads: AF_PACKET sends a frame shorter than a page all linear.)
        Bytes opts = {0x1E, 180};  // one option to skip: 2 + 180 bytes, a 184-byte header
        Bytes filler = pattern(180, 4);
        opts.insert(opts.end(), filler.begin(), filler.end());
        auto behind_opts = [&](Bytes payload) {
            Packet q = request("2001:db8:1::5", 53, std::move(payload));
            q.ipv6_ext(IPPROTO_DSTOPTS, opts).udp(++sport, 53);
            EXPECT_EQ(q.l4_offset() + 8, 246u);
            return q;
        };
        Packet forged =
            behind_opts(concat(pptest::proxy_v2_header(Addr::parse("2001:db8:bad::1"), 1,
                                                       Addr::parse("2001:db8:1::5"), 53),
                               pattern(8000, 6)));
        send_frame(forged.build(), true);
        EXPECT_FALSE(receive_udp(rx.get(), sport, 53, 300)) << "a forged header went through";
        Packet plain = behind_opts(pattern(8000, 6));
        send_frame(plain.build());
        auto got_plain = receive_udp(rx.get(), sport, 53);
        ASSERT_TRUE(got_plain) << "the datagram behind the long options did not arrive";
        Bytes want_plain = with_header(plain, v2_of(plain));
        EXPECT_TRUE(*got_plain == want_plain)
            << pptest::describe_difference(want_plain, *got_plain);

        // Replies: strip an echoed SPP header from a paged 8000-byte datagram.
        LIBBPF_OPTS(bpf_tc_opts, attached, .handle = tc.handle, .priority = tc.priority);
        ASSERT_EQ(bpf_tc_detach(&hook, &attached), 0);
        LIBBPF_OPTS(bpf_tc_opts, tc_egress, .prog_fd = prog_fd(Dir::egress));
        ASSERT_EQ(bpf_tc_attach(&hook, &tc_egress), 0);
        Packet rep = reply("192.0.2.2", 5000, pattern(8000, 5));
        send_frame(with_header(rep, echoed_spp_of(rep)));
        auto got = receive_udp(rx.get(), 5000, kClientPort);
        ASSERT_TRUE(got) << "no reply arrived on pb";
        EXPECT_TRUE(*got == rep.build()) << pptest::describe_difference(rep.build(), *got);
        EXPECT_TRUE(pptest::check_frame(*got).ok());
    });
    EXPECT_EQ(counters(kV2), injected_v2());
    EXPECT_EQ(counters(kV2Six), injected_v2());
    EXPECT_EQ(
        counters(kSpp),
        counts({{"seen", 1}, {"injected_spp", 1}, {"flows_new", 1}, {"spp_reply_stripped", 1}}));
    EXPECT_EQ(counters(kEvery),
              counts({{"seen", 2}, {"injected_v2", 1}, {"flows_new", 1}, {"grow_failed", 1}}));
    EXPECT_EQ(counters(kPrefixSix),
              counts({{"seen", 2}, {"spoof_dropped", 1}, {"injected_v2", 1}, {"flows_new", 1}}));
}

// --- Cost (reported, not asserted) ----------------------------------------------------

TEST_F(UdpProgTest, CostPerRun) {
    Bytes pass = request("192.0.2.99", 53, pattern(64)).build();
    Result rp = run(Dir::ingress, pass, nullptr, 1000);
    ASSERT_EQ(rp.err, 0);
    Bytes inject_in = request("192.0.2.4", 53, pattern(64)).build();
    std::uint64_t total = 0;
    const int n = 200;
    for (int i = 0; i < n; i++) {
        Result r = run(Dir::ingress, inject_in);
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ(r.verdict, kUnspec);
        total += r.duration_ns;
    }
    std::printf(
        "[ cost     ] pass-through: %u ns/run (repeat 1000); v2 inject, 64-byte payload: "
        "%llu ns/run (mean of %d runs)\n",
        rp.duration_ns, static_cast<unsigned long long>(total / n), n);
    RecordProperty("pass_through_ns", static_cast<int>(rp.duration_ns));
    RecordProperty("v2_inject_ns", static_cast<int>(total / n));
}

}  // namespace
