// The sk_lookup program steer_tcp (bpf/tcp.bpf.c) under BPF_PROG_TEST_RUN, on a table of
// lookups (katran's fixture style): {description, lookup context, expected verdict,
// expected socket}.
//
// The services map holds real keys (make_service_key, one per port as the loader expands
// ranges) and tcp_listen real listening TCP sockets on 127.0.0.1 and ::1 port 0, opened in
// a namespace of the test's own, at PP_TCP_LISTEN_SLOT(id, ipv6) as the daemon places them.
// The kernel runs the program on the struct bpf_sk_lookup given as ctx_in and returns, in
// ctx_out.cookie, the cookie of the socket the program selected (0: none), which is
// compared with each listener's SO_COOKIE.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loader/service_key.hpp"
#include "loader/skeleton.hpp"
#include "support/netns.hpp"
#include "support/privileges.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"
#include "sys/kernel.hpp"
#include "tcp.skel.h"

namespace {

using ppinject::error_text;
using ppinject::Fd;

// The kernel's "operation not supported" (ENOTSUPP, not ENOTSUP), which BPF_PROG_TEST_RUN
// returns for a program type without a test run: sk_lookup before Linux 5.14.
constexpr int kENOTSUPP = 524;

enum class Family { v4, v6 };

// Service ids; each names its tcp_listen slots.
enum : std::uint32_t {
    kWeb = 1,      // exact addresses
    kRange = 2,    // prefixes and a port range
    kWide = 3,     // a /24 ...
    kNarrow = 4,   // ... and a /25 inside it
    kAny = 5,      // [::], dual stack
    kPinned = 6,   // an exact IPv4 address on [::]'s port
    kPlain = 7,    // not transparent
    kDown = 8,     // transparent, no listener
    kUdp = 9,      // a UDP service
    kCrossed = 10  // an IPv4 socket in its IPv6 slot
};

struct ServiceDef {
    std::uint32_t id;
    std::uint8_t protocol;
    const char *addr;
    unsigned prefix;
    std::uint16_t port_first, port_last;
    bool transparent;
};

const ServiceDef kServices[] = {
    {kWeb, IPPROTO_TCP, "192.0.2.1", 32, 443, 443, true},
    {kWeb, IPPROTO_TCP, "2001:db8::1", 128, 443, 443, true},
    {kRange, IPPROTO_TCP, "203.0.113.0", 24, 7100, 7102, true},
    {kRange, IPPROTO_TCP, "2001:db8:3::", 64, 7100, 7102, true},
    {kWide, IPPROTO_TCP, "198.51.100.0", 24, 80, 80, true},
    {kNarrow, IPPROTO_TCP, "198.51.100.128", 25, 80, 80, true},
    {kAny, IPPROTO_TCP, "::", 0, 8080, 8080, true},
    {kPinned, IPPROTO_TCP, "192.0.2.8", 32, 8080, 8080, true},
    {kPlain, IPPROTO_TCP, "192.0.2.7", 32, 25, 25, false},
    {kDown, IPPROTO_TCP, "192.0.2.80", 32, 443, 443, true},
    // Flagged transparent too, so only the key's protocol keeps TCP lookups off it.
    {kUdp, IPPROTO_UDP, "192.0.2.53", 32, 53, 53, true},
    {kCrossed, IPPROTO_TCP, "2001:db8::10", 128, 443, 443, true},
};

// A listening socket of family `socket` in the tcp_listen slot of (`id`, `slot`).
struct ListenerDef {
    std::uint32_t id;
    Family slot;
    Family socket;
};

// Both slots of every service, as the daemon fills them for transparent services (and, to
// show that the flag decides, for the non-transparent and UDP ones), except kDown (none)
// and kCrossed (an IPv4 socket where the IPv6 one belongs).
std::vector<ListenerDef> listener_defs() {
    std::vector<ListenerDef> out;
    for (std::uint32_t id : {kWeb, kRange, kWide, kNarrow, kAny, kPinned, kPlain, kUdp}) {
        out.push_back({id, Family::v4, Family::v4});
        out.push_back({id, Family::v6, Family::v6});
    }
    out.push_back({kCrossed, Family::v6, Family::v4});
    return out;
}

std::uint32_t slot_of(std::uint32_t id, Family f) {
    return PP_TCP_LISTEN_SLOT(id, f == Family::v6);
}

// The listening socket a lookup is expected to select: the one in this slot.
struct Selected {
    std::uint32_t id;
    Family slot;
};

// The connection being looked up; the family follows from the local address. tcp() and
// udp() give it a fixed remote end of that family: steer_tcp does not read it.
struct Lookup {
    std::uint8_t protocol;
    const char *local;
    std::uint16_t local_port;
    const char *remote;
    std::uint16_t remote_port;
};

Lookup tcp(const char *local, std::uint16_t port) {
    bool v6 = std::string(local).find(':') != std::string::npos;
    return {IPPROTO_TCP, local, port, v6 ? "2001:db8:ff::200" : "192.0.2.200", 40000};
}
Lookup udp(const char *local, std::uint16_t port) {
    Lookup l = tcp(local, port);
    l.protocol = IPPROTO_UDP;
    return l;
}

struct Case {
    const char *description;
    Lookup lookup;
    int verdict;
    std::optional<Selected> socket;  // none: the program leaves it to the regular lookup
};

// steer_tcp never returns SK_DROP: whatever it does not steer goes on to the regular
// socket lookup (a listener on the address, or a RST). The column is there so that a drop
// would show.
const Case kCases[] = {
    {"exact IPv4 address", tcp("192.0.2.1", 443), SK_PASS, Selected{kWeb, Family::v4}},
    {"exact IPv6 address", tcp("2001:db8::1", 443), SK_PASS, Selected{kWeb, Family::v6}},
    {"exact address, another port", tcp("192.0.2.1", 444), SK_PASS, std::nullopt},
    {"the address next to an exact one", tcp("192.0.2.2", 443), SK_PASS, std::nullopt},
    {"IPv4 prefix, first port of the range", tcp("203.0.113.9", 7100), SK_PASS,
     Selected{kRange, Family::v4}},
    {"IPv4 prefix, last port of the range", tcp("203.0.113.250", 7102), SK_PASS,
     Selected{kRange, Family::v4}},
    {"IPv4 prefix, the port after the range", tcp("203.0.113.9", 7103), SK_PASS, std::nullopt},
    {"IPv4 address just outside the prefix", tcp("203.0.114.9", 7100), SK_PASS, std::nullopt},
    {"IPv6 prefix, a port inside the range", tcp("2001:db8:3::abcd", 7101), SK_PASS,
     Selected{kRange, Family::v6}},
    {"IPv6 address just outside the /64", tcp("2001:db8:3:1::1", 7101), SK_PASS, std::nullopt},
    {"IPv4 address of no service", tcp("192.0.2.99", 443), SK_PASS, std::nullopt},
    {"IPv6 address of no service", tcp("2001:db8:ff::1", 443), SK_PASS, std::nullopt},
    {"most specific prefix wins: inside the /25", tcp("198.51.100.200", 80), SK_PASS,
     Selected{kNarrow, Family::v4}},
    {"the /24 outside its /25", tcp("198.51.100.5", 80), SK_PASS, Selected{kWide, Family::v4}},
    {"[::] takes an IPv4 address (dual stack), to the IPv4 socket", tcp("192.0.2.9", 8080), SK_PASS,
     Selected{kAny, Family::v4}},
    {"[::] takes an IPv6 address", tcp("2001:db8:ff::1", 8080), SK_PASS,
     Selected{kAny, Family::v6}},
    {"an exact IPv4 address wins over [::]", tcp("192.0.2.8", 8080), SK_PASS,
     Selected{kPinned, Family::v4}},
    {"not transparent: untouched, though its slots hold sockets", tcp("192.0.2.7", 25), SK_PASS,
     std::nullopt},
    // The listeners are TCP, which the kernel would refuse to a UDP lookup anyway; the row
    // pins the outcome, whichever check gives it.
    {"UDP to a transparent TCP service's address", udp("192.0.2.1", 443), SK_PASS, std::nullopt},
    {"TCP to a UDP service's address and port", tcp("192.0.2.53", 53), SK_PASS, std::nullopt},
    // The daemon is gone or not ready: the regular lookup finds no listener, the client
    // gets a RST.
    {"transparent service with an empty slot", tcp("192.0.2.80", 443), SK_PASS, std::nullopt},
    // bpf_sk_assign refuses an IPv4 socket to an IPv6 lookup (EAFNOSUPPORT); the program
    // passes and the regular lookup runs.
    {"a socket of the wrong family in the slot", tcp("2001:db8::10", 443), SK_PASS, std::nullopt},
};

bpf_sk_lookup context_of(const Lookup &l) {
    bpf_sk_lookup ctx{};
    bool v6 = std::string(l.local).find(':') != std::string::npos;
    ctx.family = v6 ? AF_INET6 : AF_INET;
    ctx.protocol = l.protocol;
    // Addresses in network order, as inet_pton writes them.
    EXPECT_EQ(inet_pton(ctx.family, l.local, v6 ? ctx.local_ip6 : &ctx.local_ip4), 1) << l.local;
    EXPECT_EQ(inet_pton(ctx.family, l.remote, v6 ? ctx.remote_ip6 : &ctx.remote_ip4), 1)
        << l.remote;
    ctx.local_port = l.local_port;           // host order, as the program reads it
    ctx.remote_port = htons(l.remote_port);  // network order
    return ctx;
}

class TcpProgTest : public ::testing::Test {
  protected:
    void SetUp() override {
        PP_REQUIRE_ROOT();
        skel_.reset(tcp_bpf::open_and_load());
        ASSERT_TRUE(skel_) << error_text("open_and_load tcp skeleton", -errno);
        for (const auto &s : kServices) {
            add_service(s);
        }
        ns_ = std::make_unique<pptest::Netns>("tcpprog");
        for (const auto &l : listener_defs()) {
            add_listener(l);
        }
    }

    void add_service(const ServiceDef &s) {
        auto addr = ppinject::IpAddress::parse(s.addr);
        ASSERT_TRUE(addr) << s.addr;
        pp_service v{};
        v.id = s.id;
        v.header = PP_HDR_V2;
        v.flags = s.transparent ? PP_SVC_TRANSPARENT : 0;
        for (unsigned port = s.port_first; port <= s.port_last; port++) {
            pp_service_key key = ppinject::make_service_key(s.protocol, *addr, s.prefix,
                                                            static_cast<std::uint16_t>(port));
            ASSERT_EQ(
                bpf_map__update_elem(skel_->maps.services, &key, sizeof key, &v, sizeof v, BPF_ANY),
                0)
                << error_text(std::string("add ") + s.addr + " to services", -errno);
        }
    }

    // A listening socket on the loopback address of `l.socket`, port 0, in its slot. No
    // SO_REUSEPORT, unlike the daemon's: the test run refuses to select a socket of a
    // reuseport group (EOPNOTSUPP), having no packet to pick a member of the group with.
    void add_listener(const ListenerDef &l) {
        bool v6 = l.socket == Family::v6;
        Fd s = ns_->socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM);
        sockaddr_storage ss{};
        socklen_t len;
        if (v6) {
            int one = 1;  // as the daemon's: IPv6 only
            ASSERT_EQ(setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), 0);
            auto *in6 = reinterpret_cast<sockaddr_in6 *>(&ss);
            in6->sin6_family = AF_INET6;
            in6->sin6_addr = in6addr_loopback;
            len = sizeof *in6;
        } else {
            auto *in = reinterpret_cast<sockaddr_in *>(&ss);
            in->sin_family = AF_INET;
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof *in;
        }
        ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr *>(&ss), len), 0)
            << error_text("bind listener", errno);
        ASSERT_EQ(listen(s.get(), 16), 0) << error_text("listen", errno);
        std::uint64_t cookie = 0;
        socklen_t clen = sizeof cookie;
        ASSERT_EQ(getsockopt(s.get(), SOL_SOCKET, SO_COOKIE, &cookie, &clen), 0)
            << error_text("SO_COOKIE", errno);
        ASSERT_NE(cookie, 0u);
        std::uint32_t slot = slot_of(l.id, l.slot);
        std::uint64_t value = static_cast<std::uint64_t>(s.get());  // a sockmap takes the fd
        ASSERT_EQ(bpf_map__update_elem(skel_->maps.tcp_listen, &slot, sizeof slot, &value,
                                       sizeof value, BPF_ANY),
                  0)
            << error_text("put a listener in tcp_listen slot " + std::to_string(slot), -errno);
        listeners_[slot] = Listener{l.id, l.slot, std::move(s), cookie};
    }

    // What the program did with `l`: the test run's error, the verdict and the cookie of
    // the socket it selected (0: none).
    struct Result {
        int err;
        std::uint32_t verdict;
        std::uint64_t cookie;
    };
    Result run(const Lookup &l) {
        bpf_sk_lookup in = context_of(l), out{};
        LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &in, .ctx_out = &out,
                    .ctx_size_in = sizeof in, .ctx_size_out = sizeof out, .repeat = 1);
        int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.steer_tcp), &opts);
        return {err, opts.retval, out.cookie};
    }

    // "the socket in service 1's IPv4 slot" for a cookie of ours.
    std::string describe(std::uint64_t cookie) const {
        if (cookie == 0) {
            return "no socket";
        }
        for (const auto &[slot, l] : listeners_) {
            if (l.cookie == cookie) {
                return "the socket in service " + std::to_string(l.id) + "'s " +
                       (l.slot == Family::v6 ? "IPv6" : "IPv4") + " slot";
            }
        }
        return "unknown socket " + std::to_string(cookie);
    }

    std::uint64_t cookie_of(const std::optional<Selected> &s) const {
        return s ? listeners_.at(slot_of(s->id, s->slot)).cookie : 0;
    }

    ppinject::Skeleton<tcp_bpf> skel_;
    std::unique_ptr<pptest::Netns> ns_;
    struct Listener {
        std::uint32_t id;
        Family slot;
        Fd fd;
        std::uint64_t cookie;  // SO_COOKIE
    };
    std::map<std::uint32_t, Listener> listeners_;  // by tcp_listen slot
};

TEST_F(TcpProgTest, SteersEachLookupOfTheTable) {
    if (run(tcp("192.0.2.1", 443)).err == -kENOTSUPP) {
        PP_SKIP_MISSING_KERNEL_FEATURE("BPF_PROG_TEST_RUN for sk_lookup programs (Linux 5.14)");
    }
    for (const Case &c : kCases) {
        SCOPED_TRACE(c.description);
        Result r = run(c.lookup);
        ASSERT_EQ(r.err, 0) << error_text("BPF_PROG_TEST_RUN steer_tcp", r.err);
        EXPECT_EQ(r.verdict, static_cast<std::uint32_t>(c.verdict));
        EXPECT_EQ(describe(r.cookie), describe(cookie_of(c.socket)));
    }
}

// A listener that closes leaves the sockmap with it: its service's lookups then pass to
// the regular lookup, as with a slot never filled.
TEST_F(TcpProgTest, ClosedListenerLeavesItsSlot) {
    Lookup l = tcp("192.0.2.1", 443);
    Result before = run(l);
    if (before.err == -kENOTSUPP) {
        PP_SKIP_MISSING_KERNEL_FEATURE("BPF_PROG_TEST_RUN for sk_lookup programs (Linux 5.14)");
    }
    ASSERT_EQ(before.err, 0) << error_text("BPF_PROG_TEST_RUN steer_tcp", before.err);
    EXPECT_EQ(describe(before.cookie), describe(cookie_of(Selected{kWeb, Family::v4})));
    listeners_.at(slot_of(kWeb, Family::v4)).fd.reset();
    Result after = run(l);
    ASSERT_EQ(after.err, 0) << error_text("BPF_PROG_TEST_RUN steer_tcp", after.err);
    EXPECT_EQ(after.verdict, static_cast<std::uint32_t>(SK_PASS));
    EXPECT_EQ(describe(after.cookie), "no socket");
}

}  // namespace
