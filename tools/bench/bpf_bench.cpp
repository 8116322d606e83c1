// BPF programs alone, for `make bench`: BPF_PROG_TEST_RUN nanoseconds per packet of the UDP
// TC programs and the XDP one (build/bpf/udp.skel.h), and of the inline TCP programs on a
// data segment of an established connection (build/bpf/tcp_inline.skel.h), each next to an
// empty program of its hook (the baseline: what the test-run machinery itself costs there).
// Prints one JSON array on stdout; each row names its hook and its hook's baseline comes
// first.
//
// Programs that leave the packet unchanged are timed twice: with a large `repeat` (the
// kernel's own average) and, like the mutating ones, with repeat = 1 averaged over many
// runs. A mutating program cannot use `repeat`: each repetition would insert another
// header into the same, growing packet. repeat = 1 includes the test run's fixed per-call
// overhead, which is why the empty program is measured the same way. The inline programs'
// rewrites (sequence number forward, acknowledgement back) keep the length but cannot be
// repeated either: every repetition would shift the same packet's number once more.
//
// Usage: bpf_bench [runs]   (root; default 20000 single runs per case)
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sys/fd.hpp"
#include "sys/kernel.hpp"
#include "loader/service_key.hpp"
#include "loader/skeleton.hpp"
#include "support/packet.hpp"
#include "support/udp_ports.hpp"
#include "tcp_inline.skel.h"
#include "udp.skel.h"

namespace {

using pptest::Bytes;
using pptest::Packet;
using pptest::pattern;
using pptest::Tcp;

constexpr int kRepeat = 100000;

struct Case {
    std::string name;
    int fd;
    Bytes frame;
    bool mutates;           // cannot be repeated: the packet grows (or, with rewrites, changes)
    bool xdp = false;       // the verdict that lets the frame on is XDP_PASS
    bool rewrites = false;  // changes bytes but keeps the length (inline TCP's shifts)
};

struct Timing {
    double repeat_ns = -1;  // kernel average over kRepeat (non-mutating only)
    double single_ns = 0;   // mean of repeat = 1 runs
    double single_p50 = 0;
    int verdict = 0;
    Bytes out;  // the last run's output
};

[[noreturn]] void fail(const std::string &what) {
    std::fprintf(stderr, "bpf_bench: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

int run_once(int fd, const Bytes &in, int repeat, std::uint32_t &duration, Bytes &out) {
    out.assign(in.size() + 512, 0);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = in.data();
    opts.data_size_in = static_cast<__u32>(in.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<__u32>(out.size());
    opts.repeat = repeat;
    if (bpf_prog_test_run_opts(fd, &opts) != 0) {
        fail("BPF_PROG_TEST_RUN");
    }
    duration = opts.duration;
    out.resize(opts.data_size_out);
    return static_cast<int>(opts.retval);
}

Timing measure(const Case &c, int runs) {
    Timing t;
    std::uint32_t d = 0;
    if (!c.mutates) {
        t.verdict = run_once(c.fd, c.frame, kRepeat, d, t.out);
        t.repeat_ns = d;
    }
    std::vector<std::uint32_t> samples;
    samples.reserve(static_cast<std::size_t>(runs));
    double sum = 0;
    for (int i = 0; i < runs; i++) {
        t.verdict = run_once(c.fd, c.frame, 1, d, t.out);
        samples.push_back(d);
        sum += d;
    }
    std::nth_element(samples.begin(), samples.begin() + runs / 2, samples.end());
    t.single_ns = sum / runs;
    t.single_p50 = samples[static_cast<std::size_t>(runs / 2)];
    return t;
}

void add_service(udp_bpf *skel, const char *addr, std::uint16_t port, std::uint32_t id,
                 std::uint8_t header, std::uint8_t udp_header) {
    auto ip = ppinject::IpAddress::parse(addr);
    if (!ip) {
        std::fprintf(stderr, "bpf_bench: bad address %s\n", addr);
        std::exit(1);
    }
    unsigned prefix = ip->is_v4() ? 32 : 128;
    pp_service_key key = ppinject::make_service_key(IPPROTO_UDP, *ip, prefix, port);
    pp_service v{};
    v.id = id;
    v.header = header;
    v.udp_header = udp_header;
    v.on_error = PP_ON_ERROR_DROP;
    v.flow_timeout_ns = 3600ull * 1000000000ull;
    std::snprintf(v.name, sizeof v.name, "bench%u", id);
    if (bpf_map__update_elem(skel->maps.services, &key, sizeof key, &v, sizeof v, 0) != 0) {
        fail("services update");
    }
    pp_address_key akey = ppinject::make_address_key(*ip, prefix);
    if (bpf_map__update_elem(skel->maps.udp_addresses, &akey, sizeof akey, &v, sizeof v, 0) != 0) {
        fail("udp_addresses update");
    }
    if (!pptest::mark_udp_port(bpf_map__fd(skel->maps.udp_ports), port)) {
        fail("udp_ports update");
    }
}

Bytes frame(const char *src, const char *dst, std::uint16_t dport, std::size_t payload) {
    Packet p;
    p.ip(src, dst).udp(40000, dport).payload(pattern(payload));
    return p.build();
}

// A program of one kind that only returns `verdict`.
ppinject::Fd load_empty(bpf_prog_type type, int verdict, const char *name) {
    struct bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, verdict},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    ppinject::Fd fd(bpf_prog_load(type, name, "GPL", insns, 2, nullptr));
    if (!fd) {
        fail(std::string("load the empty program ") + name);
    }
    return fd;
}

// Inline TCP: a v2 service on 192.0.2.1:443 and one connection to it from
// 203.0.113.10:40000, taken through its handshake (SYN, SYN-ACK, the ACK that carries the
// header) and the backend's ACK of the header, as tests/tcp_inline_prog_test.cpp does: its
// later segments are what nearly all of an inline connection's packets are.
constexpr std::uint16_t kInlinePort = 443;

struct InlineConn {
    ppinject::Skeleton<tcp_inline_bpf> skel;
    int ingress = -1, egress = -1;
    std::uint32_t isn = 0x10000000u, server_isn = 0x70000000u;
    std::uint32_t h = 0;  // the header's length, as the handshake ACK grew by it

    // A segment from the client (`to_service`) or from the service, with timestamps; from
    // the client `num` is its seq, from the service its ack.
    Bytes segment(bool to_service, std::uint16_t port, std::uint32_t num, Bytes payload) const {
        Bytes ts = {1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 9};
        Packet p;
        std::uint8_t flags = Tcp::kAck | (payload.empty() ? 0 : Tcp::kPsh);
        if (to_service) {
            p.ip("203.0.113.10", "192.0.2.1")
                .tcp(40000, port, Tcp{num, server_isn + 1, flags, 502, 0, ts});
        } else {
            p.ip("192.0.2.1", "203.0.113.10")
                .tcp(port, 40000, Tcp{server_isn + 1, num, flags, 509, 0, ts});
        }
        p.payload(std::move(payload));
        return p.build();
    }
};

InlineConn inline_established() {
    InlineConn c;
    c.skel = ppinject::Skeleton<tcp_inline_bpf>(tcp_inline_bpf::open_and_load());
    if (!c.skel) {
        fail("load the tcp_inline skeleton");
    }
    c.ingress = bpf_program__fd(c.skel->progs.inline_ingress);
    c.egress = bpf_program__fd(c.skel->progs.inline_egress);
    auto ip = ppinject::IpAddress::parse("192.0.2.1");
    pp_service_key key = ppinject::make_service_key(IPPROTO_TCP, *ip, 32, kInlinePort);
    pp_service v{};
    v.id = 1;
    v.header = PP_HDR_V2;
    v.flags = PP_SVC_INLINE;
    v.flow_timeout_ns = 3600ull * 1000000000ull;
    std::snprintf(v.name, sizeof v.name, "bench-inline");
    if (bpf_map__update_elem(c.skel->maps.services, &key, sizeof key, &v, sizeof v, 0) != 0) {
        fail("inline services update");
    }
    // Each step's verdict must be TC_ACT_UNSPEC (passed on); the ACK grows by the header.
    auto step = [](const char *what, int fd, const Bytes &in) {
        std::uint32_t d;
        Bytes out;
        if (run_once(fd, in, 1, d, out) != TC_ACT_UNSPEC) {
            errno = EPROTO;
            fail(std::string("inline connection setup: ") + what + " not passed");
        }
        return out.size() - in.size();
    };
    Bytes syn_opts = {2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7};
    Packet syn, syn_ack;
    syn.ip("203.0.113.10", "192.0.2.1")
        .tcp(40000, kInlinePort, Tcp{c.isn, 0, Tcp::kSyn, 64240, 0, syn_opts});
    syn_ack.ip("192.0.2.1", "203.0.113.10")
        .tcp(kInlinePort, 40000,
             Tcp{c.server_isn, c.isn + 1, Tcp::kSyn | Tcp::kAck, 65160, 0, syn_opts});
    step("SYN", c.ingress, syn.build());
    step("SYN-ACK", c.egress, syn_ack.build());
    c.h = static_cast<std::uint32_t>(
        step("handshake ACK", c.ingress, c.segment(true, kInlinePort, c.isn + 1, {})));
    if (c.h == 0) {
        errno = EPROTO;
        fail("inline connection setup: the handshake ACK did not carry the header");
    }
    step("ACK of the header", c.egress, c.segment(false, kInlinePort, c.isn + 1 + c.h, {}));
    return c;
}

}  // namespace

int main(int argc, char **argv) {
    int runs = argc > 1 ? std::atoi(argv[1]) : 20000;
    if (runs < 100 || runs > 10000000) {
        std::fprintf(stderr, "bpf_bench: runs must be 100..10000000\n");
        return 2;
    }
    libbpf_set_print([](enum libbpf_print_level, const char *, va_list) { return 0; });
    ppinject::Skeleton<udp_bpf> skel(udp_bpf::open_and_load());
    if (!skel) {
        fail("load the udp skeleton (root?)");
    }
    // Services: 192.0.2.1:53 v2 first, 192.0.2.4:53 and [2001:db8::4]:53 v2 every,
    // 192.0.2.2:5000 and [2001:db8::2]:5000 SPP.
    add_service(skel.get(), "192.0.2.1", 53, 1, PP_HDR_V2, PP_UDP_FIRST);
    add_service(skel.get(), "192.0.2.4", 53, 2, PP_HDR_V2, PP_UDP_EVERY);
    add_service(skel.get(), "2001:db8::4", 53, 3, PP_HDR_V2, PP_UDP_EVERY);
    add_service(skel.get(), "192.0.2.2", 5000, 4, PP_HDR_SPP, PP_UDP_FIRST);
    add_service(skel.get(), "2001:db8::2", 5000, 5, PP_HDR_SPP, PP_UDP_FIRST);

    // The empty programs each hook's figures are measured above: r0 = TC_ACT_UNSPEC or
    // XDP_PASS; exit.
    ppinject::Fd empty_fd = load_empty(BPF_PROG_TYPE_SCHED_CLS, TC_ACT_UNSPEC, "bench_empty");
    ppinject::Fd empty_xdp_fd = load_empty(BPF_PROG_TYPE_XDP, XDP_PASS, "bench_empty_xdp");
    int ingress = bpf_program__fd(skel->progs.udp_ingress);
    int xdp = bpf_program__fd(skel->progs.udp_xdp);
    const char *c4 = "203.0.113.10", *c6 = "2001:db8:100::10";

    // A live flow for the "first" service: its first datagram gets the header, later ones
    // pass unchanged (what most datagrams of a `first` service do).
    Bytes first_flow = frame(c4, "192.0.2.1", 53, 64);
    {
        std::uint32_t d;
        Bytes out;
        run_once(ingress, first_flow, 1, d, out);
    }
    InlineConn tcp = inline_established();

    std::vector<Case> cases = {
        {"empty TC program (baseline)", empty_fd.get(), frame(c4, "192.0.2.99", 53, 64), false},
        {"udp_ingress pass, port of no service (IPv4 64 B)", ingress,
         frame(c4, "192.0.2.99", 123, 64), false},
        {"udp_ingress pass, port of no service (IPv6 64 B)", ingress,
         frame(c6, "2001:db8::99", 123, 64), false},
        {"udp_ingress pass, no service (IPv4 64 B)", ingress, frame(c4, "192.0.2.99", 53, 64),
         false},
        {"udp_ingress pass, no service (IPv6 64 B)", ingress, frame(c6, "2001:db8::99", 53, 64),
         false},
        {"udp_ingress pass, live flow of `first` (IPv4 64 B)", ingress, first_flow, false},
        {"v2 inject IPv4 64 B", ingress, frame(c4, "192.0.2.4", 53, 64), true},
        {"v2 inject IPv4 1400 B", ingress, frame(c4, "192.0.2.4", 53, 1400), true},
        {"v2 inject IPv6 64 B", ingress, frame(c6, "2001:db8::4", 53, 64), true},
        {"v2 inject IPv6 1400 B", ingress, frame(c6, "2001:db8::4", 53, 1400), true},
        {"SPP inject IPv4 64 B", ingress, frame(c4, "192.0.2.2", 5000, 64), true},
        {"SPP inject IPv4 1400 B", ingress, frame(c4, "192.0.2.2", 5000, 1400), true},
        {"SPP inject IPv6 64 B", ingress, frame(c6, "2001:db8::2", 5000, 64), true},
        {"SPP inject IPv6 1400 B", ingress, frame(c6, "2001:db8::2", 5000, 1400), true},
        // The same at XDP (attach = "xdp"), against the empty XDP program.
        {"empty XDP program (baseline)", empty_xdp_fd.get(), frame(c4, "192.0.2.99", 53, 64), false,
         true},
        {"udp_xdp pass, port of no service (IPv4 64 B)", xdp, frame(c4, "192.0.2.99", 123, 64),
         false, true},
        {"udp_xdp pass, no service (IPv4 64 B)", xdp, frame(c4, "192.0.2.99", 53, 64), false, true},
        {"udp_xdp pass, live flow of `first` (IPv4 64 B)", xdp, first_flow, false, true},
        {"xdp v2 inject IPv4 64 B", xdp, frame(c4, "192.0.2.4", 53, 64), true, true},
        {"xdp v2 inject IPv4 1400 B", xdp, frame(c4, "192.0.2.4", 53, 1400), true, true},
        {"xdp v2 inject IPv6 64 B", xdp, frame(c6, "2001:db8::4", 53, 64), true, true},
        {"xdp v2 inject IPv6 1400 B", xdp, frame(c6, "2001:db8::4", 53, 1400), true, true},
        {"xdp SPP inject IPv4 64 B", xdp, frame(c4, "192.0.2.2", 5000, 64), true, true},
        {"xdp SPP inject IPv4 1400 B", xdp, frame(c4, "192.0.2.2", 5000, 1400), true, true},
        {"xdp SPP inject IPv6 64 B", xdp, frame(c6, "2001:db8::2", 5000, 64), true, true},
        {"xdp SPP inject IPv6 1400 B", xdp, frame(c6, "2001:db8::2", 5000, 1400), true, true},
        // Inline TCP (tc, against the empty TC program): a segment of no inline service,
        // and an established connection's data and acks, the header acknowledged.
        {"inline_ingress pass, no inline service (IPv4 1400 B)", tcp.ingress,
         tcp.segment(true, 80, tcp.isn + 1, pattern(1400)), false},
        {"inline_ingress data, seq shifted by the header (IPv4 1400 B)", tcp.ingress,
         tcp.segment(true, kInlinePort, tcp.isn + 1 + 1400, pattern(1400)), true, false, true},
        {"inline_egress data, ack shifted back (IPv4 1400 B)", tcp.egress,
         tcp.segment(false, kInlinePort, tcp.isn + 1 + tcp.h + 2800, pattern(1400)), true, false,
         true},
        {"inline_egress pure ACK, ack shifted back (IPv4)", tcp.egress,
         tcp.segment(false, kInlinePort, tcp.isn + 1 + tcp.h + 2800, {}), true, false, true},
    };

    std::printf("[\n");
    for (std::size_t i = 0; i < cases.size(); i++) {
        const Case &c = cases[i];
        Timing t = measure(c, runs);
        bool grew = t.out.size() > c.frame.size();
        bool changed = t.out.size() == c.frame.size() && t.out != c.frame;
        if ((c.mutates && !c.rewrites) != grew || c.rewrites != changed ||
            t.verdict != (c.xdp ? XDP_PASS : TC_ACT_UNSPEC)) {
            std::fprintf(stderr,
                         "bpf_bench: %s: verdict %d, %zu -> %zu bytes%s: not what it measures\n",
                         c.name.c_str(), t.verdict, c.frame.size(), t.out.size(),
                         changed ? " (changed)" : "");
            return 1;
        }
        std::printf(
            "  {\"case\": \"%s\", \"hook\": \"%s\", \"frame_bytes\": %zu, \"out_bytes\": %zu, "
            "\"repeat\": %d, \"repeat_ns\": %.1f, \"single_runs\": %d, \"single_mean_ns\": %.1f, "
            "\"single_p50_ns\": %.1f}%s\n",
            c.name.c_str(), c.xdp ? "xdp" : "tc", c.frame.size(), t.out.size(),
            c.mutates ? 0 : kRepeat, t.repeat_ns, runs, t.single_ns, t.single_p50,
            i + 1 < cases.size() ? "," : "");
    }
    std::printf("]\n");
    return 0;
}
