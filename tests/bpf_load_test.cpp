// The clang -> bpftool skeleton -> C++ chain, end to end: the UDP object loads through its
// skeleton, runs under BPF_PROG_TEST_RUN, and its per-CPU counters read back here. The
// shared header's layout against the objects' BTF is bpf_layout_test.cpp.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "sys/kernel.hpp"
#include "loader/service_key.hpp"
#include "loader/skeleton.hpp"
#include "support/privileges.hpp"
#include "support/udp_ports.hpp"
#include "udp.skel.h"

namespace {

TEST(BpfLoad, UdpSkeletonLoadsRunsAndCounts) {
    PP_REQUIRE_ROOT();
    ppinject::Skeleton<udp_bpf> skel(udp_bpf::open_and_load());
    ASSERT_TRUE(skel) << "open_and_load udp skeleton: " << std::strerror(errno);

    // One v2 service on 192.0.2.1:53 with id 7.
    auto key =
        ppinject::make_service_key(IPPROTO_UDP, *ppinject::IpAddress::parse("192.0.2.1"), 32, 53);
    pp_service svc{};
    svc.id = 7;
    svc.header = PP_HDR_V2;
    svc.flow_timeout_ns = 30'000'000'000ull;
    ASSERT_EQ(bpf_map__update_elem(skel->maps.services, &key, sizeof key, &svc, sizeof svc, 0), 0);
    ASSERT_TRUE(pptest::mark_udp_port(bpf_map__fd(skel->maps.udp_ports), 53))
        << std::strerror(errno);

    // 198.51.100.2:40000 -> 192.0.2.1:53, 4 bytes of payload, UDP checksum 0 (none).
    std::vector<unsigned char> frame = {
        0x02, 0,    0,   0,  0, 1,  0x02, 0, 0,  0,  0, 2, 0x08, 0x00,          // Ethernet
        0x45, 0,    0,   32, 0, 0,  0x40, 0, 64, 17, 0, 0, 198,  51,   100, 2,  // IPv4
        192,  0,    2,   1,                                                     //
        0x9c, 0x40, 0,   53, 0, 12, 0,    0,                                    // UDP
        'p',  'i',  'n', 'g'};
    std::vector<unsigned char> out(256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(frame.size()),
                .data_size_out = static_cast<__u32>(out.size()), .repeat = 1);
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.udp_ingress), &opts);
    ASSERT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-err);
    EXPECT_EQ(static_cast<int>(opts.retval), TC_ACT_UNSPEC);
    EXPECT_EQ(opts.data_size_out, frame.size() + PP_V2_HDR_LEN_INET);

    int ncpu = libbpf_num_possible_cpus();
    ASSERT_GT(ncpu, 0);
    std::vector<pp_counters> per_cpu(static_cast<size_t>(ncpu));
    __u32 id = svc.id;
    ASSERT_EQ(bpf_map__lookup_elem(skel->maps.counters, &id, sizeof id, per_cpu.data(),
                                   per_cpu.size() * sizeof(pp_counters), 0),
              0);
    __u64 seen = 0, injected = 0;
    for (const auto &c : per_cpu) {
        seen += c.seen;
        injected += c.injected_v2;
    }
    EXPECT_EQ(seen, 1u);
    EXPECT_EQ(injected, 1u);
}

}  // namespace
