// The clang -> bpftool skeleton -> C++ chain, end to end: the UDP object loads through its
// skeleton, runs under BPF_PROG_TEST_RUN, and its per-CPU counters read back here. The
// shared header's layout is checked against the BTF that clang emitted for the object.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "sys/kernel.hpp"
#include "loader/service_key.hpp"
#include "support/privileges.hpp"
#include "udp.skel.h"

namespace {

struct SkelDeleter {
    void operator()(udp_bpf *s) const { udp_bpf::destroy(s); }
};

TEST(BpfLoad, UdpSkeletonLoadsRunsAndCounts) {
    PP_REQUIRE_ROOT();
    std::unique_ptr<udp_bpf, SkelDeleter> skel(udp_bpf::open_and_load());
    ASSERT_TRUE(skel) << "open_and_load udp skeleton: " << std::strerror(errno);

    // One v2 service on 192.0.2.1:53 with id 7.
    auto key =
        ppinject::make_service_key(IPPROTO_UDP, *ppinject::IpAddress::parse("192.0.2.1"), 32, 53);
    pp_service svc{};
    svc.id = 7;
    svc.header = PP_HDR_V2;
    svc.flow_timeout_ns = 30'000'000'000ull;
    ASSERT_EQ(bpf_map__update_elem(skel->maps.services, &key, sizeof key, &svc, sizeof svc, 0), 0);
    ASSERT_TRUE(ppinject::mark_udp_port(bpf_map__fd(skel->maps.udp_ports), 53))
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

// Every struct in bpf/ppinject.h has the same size and member offsets in the BTF that
// clang wrote for the BPF object as g++ gives it here.
struct BtfDeleter {
    void operator()(btf *b) const { btf__free(b); }
};

void expect_layout(const btf *b, const char *type, size_t size,
                   std::vector<std::pair<const char *, size_t>> members) {
    int id = btf__find_by_name_kind(b, type, BTF_KIND_STRUCT);
    ASSERT_GT(id, 0) << type << " not in BTF";
    const btf_type *t = btf__type_by_id(b, id);
    EXPECT_EQ(t->size, size) << type;
    const btf_member *m = btf_members(t);
    for (auto [name, offset] : members) {
        bool found = false;
        for (int i = 0; i < btf_vlen(t); i++) {
            if (std::strcmp(btf__name_by_offset(b, m[i].name_off), name) == 0) {
                EXPECT_EQ(btf_member_bit_offset(t, i), offset * 8) << type << "." << name;
                found = true;
            }
        }
        EXPECT_TRUE(found) << type << "." << name << " not in BTF";
    }
}

TEST(BpfLayout, SharedHeaderMatchesObjectBtf) {
    std::string obj = std::string(PPINJECT_BINARY_DIR) + "/bpf/udp.bpf.o";
    std::unique_ptr<btf, BtfDeleter> b(btf__parse_elf(obj.c_str(), nullptr));
    ASSERT_TRUE(b) << "parse BTF of " << obj << ": " << std::strerror(errno);

    expect_layout(b.get(), "pp_service_key", sizeof(pp_service_key),
                  {{"prefixlen", offsetof(pp_service_key, prefixlen)},
                   {"protocol", offsetof(pp_service_key, protocol)},
                   {"port", offsetof(pp_service_key, port)},
                   {"addr", offsetof(pp_service_key, addr)}});
    expect_layout(b.get(), "pp_service", sizeof(pp_service),
                  {{"flow_timeout_ns", offsetof(pp_service, flow_timeout_ns)},
                   {"id", offsetof(pp_service, id)},
                   {"header", offsetof(pp_service, header)},
                   {"udp_header", offsetof(pp_service, udp_header)},
                   {"on_error", offsetof(pp_service, on_error)},
                   {"flags", offsetof(pp_service, flags)},
                   {"name", offsetof(pp_service, name)}});
    expect_layout(b.get(), "pp_attachment", sizeof(pp_attachment),
                  {{"ingress_prog_id", offsetof(pp_attachment, ingress_prog_id)},
                   {"egress_prog_id", offsetof(pp_attachment, egress_prog_id)},
                   {"created_clsact", offsetof(pp_attachment, created_clsact)},
                   {"ifname", offsetof(pp_attachment, ifname)}});
    expect_layout(b.get(), "pp_flow_key", sizeof(pp_flow_key),
                  {{"client_addr", offsetof(pp_flow_key, client_addr)},
                   {"service_addr", offsetof(pp_flow_key, service_addr)},
                   {"client_port", offsetof(pp_flow_key, client_port)},
                   {"service_port", offsetof(pp_flow_key, service_port)}});
    expect_layout(b.get(), "pp_flow", sizeof(pp_flow),
                  {{"created_ns", offsetof(pp_flow, created_ns)},
                   {"last_seen_ns", offsetof(pp_flow, last_seen_ns)},
                   {"packets", offsetof(pp_flow, packets)},
                   {"bytes", offsetof(pp_flow, bytes)},
                   {"service_id", offsetof(pp_flow, service_id)}});
    std::vector<std::pair<const char *, size_t>> counter_members;
    for (const auto &c : ppinject::kCounters) {
        counter_members.emplace_back(c.name.data(), c.offset);
    }
    expect_layout(b.get(), "pp_counters", sizeof(pp_counters), counter_members);
}

}  // namespace
