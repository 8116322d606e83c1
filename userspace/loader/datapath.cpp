#include "loader/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "config/header.hpp"
#include "config/names.hpp"
#include "loader/bpffs.hpp"
#include "loader/map_iter.hpp"
#include "loader/pins.hpp"
#include "loader/service_key.hpp"
#include "loader/tc.hpp"
#include "loader/xdp.hpp"
#include "sys/error.hpp"
#include "tcp.skel.h"
#include "tcp_inline.skel.h"
#include "udp.skel.h"

namespace ppinject {

// An interface the UDP and inline TCP services name: its index in this network namespace,
// whether UDP services need ingress there and at which hook (config validation makes every
// service on it agree), whether an SPP service needs the egress program, whether inline TCP
// services need theirs, and which services it serves.
struct WantedInterface {
    int ifindex = 0;
    bool udp = false;
    bool xdp = false;
    bool egress = false;
    bool inline_tcp = false;
    std::uint32_t services[PP_ATTACHMENT_SERVICE_WORDS] = {};
};

namespace {

// By name. Throws naming the first interface this network namespace does not have, before
// anything is changed.
std::map<std::string, WantedInterface> wanted_interfaces(const Config &cfg) {
    std::map<std::string, WantedInterface> out;
    for (const auto &svc : cfg.services) {
        bool udp = svc.protocol == Protocol::udp;
        if (!udp && svc.mode != TcpMode::inline_) {
            continue;  // relayed TCP: reached through sockets, no interface
        }
        for (const auto &ifname : svc.interfaces) {
            WantedInterface &w = out[ifname];
            if (w.ifindex == 0) {
                w.ifindex = interface_index(ifname);
            }
            if (udp) {
                w.udp = true;
                w.xdp = svc.attach == AttachHook::xdp;
                w.egress = w.egress || svc.header == HeaderMode::spp;
            } else {
                w.inline_tcp = true;
            }
            w.services[svc.id / 32] |= std::uint32_t{1} << (svc.id % 32);
        }
    }
    return out;
}

// Map keys ordered by their bytes, as the kernel compares them.
struct BytesLess {
    template <typename Key>
    bool operator()(const Key &a, const Key &b) const {
        return std::memcmp(&a, &b, sizeof a) < 0;
    }
};
template <typename Key>
using Entries = std::map<Key, pp_service, BytesLess>;

std::uint32_t prog_id(const bpf_program *prog) {
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) {
        return 0;
    }
    return info.id;
}

using PortBits = std::array<std::uint64_t, PP_UDP_PORT_WORDS>;

// Every (key, value) the services and udp_addresses maps must hold for `cfg`, and the
// udp_ports bitmap.
struct ServiceEntries {
    Entries<pp_service_key> services;
    Entries<pp_address_key> udp_addresses;
    PortBits udp_ports{};
};

ServiceEntries service_entries(const Config &cfg) {
    ServiceEntries out;
    for (const auto &svc : cfg.services) {
        pp_service v{};
        v.id = svc.id;
        v.flow_timeout_ns = static_cast<std::uint64_t>(cfg.global.udp_flow_timeout.count());
        v.header = kernel_of(kHeaderModeNames, svc.header);
        v.udp_header = kernel_of(kUdpHeaderPolicyNames, svc.udp_header);
        v.on_error = kernel_of(kOnErrorNames, svc.on_error);
        v.flags = svc.transparent ? PP_SVC_TRANSPARENT : 0;
        if (svc.is_inline()) {
            // The tc programs write the header; nothing steers to a socket. The timeout is
            // the idle time after which a connection's state goes.
            v.flags = PP_SVC_INLINE;
            v.flow_timeout_ns = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(svc.idle_timeout).count());
        }
        std::strncpy(v.name, svc.name.c_str(), sizeof v.name - 1);
        bool udp = svc.protocol == Protocol::udp;
        for (const auto &l : svc.listen) {
            for (unsigned port = l.port_first; port <= l.port_last; port++) {
                out.services[make_service_key(kernel_of(kProtocolNames, svc.protocol), l.addr,
                                              l.prefix_len, static_cast<std::uint16_t>(port))] = v;
                if (udp) {
                    out.udp_ports[port_word(port)] |= port_bit(port);
                }
            }
            if (udp) {
                // Several services on one prefix: the first one's counters count its drops.
                out.udp_addresses.emplace(make_address_key(l.addr, l.prefix_len), v);
            }
        }
    }
    return out;
}

// The TLV block of an inline v2 service's header (pp_inline_tlvs): the relay's header for
// any IPv4 connection, its addresses cut off, UNIQUE_ID and CRC32C values left zero for the
// program to fill per connection. Empty (len 0) for a service without TLVs.
pp_inline_tlvs inline_tlvs_of(const Service &svc) {
    pp_inline_tlvs t{};
    t.unique_id_at = t.crc32c_at = PP_INLINE_NO_TLV;
    if (svc.header != HeaderMode::v2 || !svc.tlv.any()) {
        return t;
    }
    std::array<std::uint8_t, PP_INLINE_HDR_MAX> buf{};
    std::size_t len = 0;
    ConnectionFacts facts;  // UNIQUE_ID all zeros
    facts.client = facts.dialled = *Endpoint::parse("0.0.0.0:0");
    if (build_header(svc, facts, buf, len) != proxy::Error::ok || len < PP_V2_HDR_LEN_INET ||
        buf[13] != 0x11 || len - PP_V2_HDR_LEN_INET > PP_INLINE_TLV_MAX) {  // TCP over IPv4
        throw std::runtime_error("header of inline service " + svc.name +
                                 " does not fit the inline header's room");  // never: check
    }
    t.len = static_cast<std::uint16_t>(len - PP_V2_HDR_LEN_INET);
    std::memcpy(t.tlvs, buf.data() + PP_V2_HDR_LEN_INET, t.len);
    // Where the per-connection values are, read from the bytes (not from build_header's
    // order); the CRC32C computed over this template is zeroed.
    for (const proxy::Tlv &tlv : proxy::TlvReader(proxy::Bytes(t.tlvs, t.len))) {
        auto at = static_cast<std::uint16_t>(tlv.value.data() - t.tlvs);
        if (tlv.type == proxy::tlv::unique_id) {
            t.unique_id_at = at;
        } else if (tlv.type == proxy::tlv::crc32c) {
            t.crc32c_at = at;
            std::memset(t.tlvs + at, 0, tlv.value.size());
        }
    }
    return t;
}

// Makes the udp_ports bitmap behind `fd` hold `want`, or, with `add_only`, `want` and
// what it held.
void sync_ports(int fd, const PortBits &want, bool add_only) {
    for (std::uint32_t w = 0; w < want.size(); w++) {
        std::uint64_t held = 0;
        if (bpf_map_lookup_elem(fd, &w, &held) != 0) {
            throw std::runtime_error(error_text("read udp_ports map", -errno));
        }
        std::uint64_t next = add_only ? held | want[w] : want[w];
        if (next != held && bpf_map_update_elem(fd, &w, &next, BPF_ANY) != 0) {
            throw std::runtime_error(error_text("update udp_ports map", -errno));
        }
    }
}

// Makes the map behind `fd` hold exactly `want`.
template <typename Key>
void sync_map(int fd, const char *name, const Entries<Key> &want) {
    for (const auto &[key, value] : want) {
        if (bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0) {
            int err = -errno;
            throw std::runtime_error(error_text(std::string("update ") + name + " map", err));
        }
    }
    std::vector<Key> stale;
    for_each_key<Key>(fd, [&](const Key &key) {
        if (!want.count(key)) {
            stale.push_back(key);
        }
    });
    for (const auto &k : stale) {
        if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) {
            int err = -errno;
            throw std::runtime_error(error_text(std::string("delete from ") + name + " map", err));
        }
    }
}

// Pinned map at `path` matches what `map` would create: same type, key, value, size, flags.
std::string incompatibility(int fd, const bpf_map *map) {
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
        return error_text("cannot read its info", -errno);
    }
    if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
        info.value_size != bpf_map__value_size(map) ||
        info.max_entries != bpf_map__max_entries(map) ||
        info.map_flags != bpf_map__map_flags(map)) {
        return "type, key, value, size or flags differ";
    }
    return {};
}

// Pins `map` under `root`, readable and writable by root only: the maps steer traffic.
void pin_private(bpf_map *map, const std::string &root) {
    std::string path = pin_path(root, map);
    if (int err = bpf_map__pin(map, path.c_str()); err != 0) {
        throw std::runtime_error(error_text("pin " + path, err));
    }
    if (chmod(path.c_str(), 0600) != 0) {
        int err = -errno;
        throw std::runtime_error(error_text("chmod 0600 " + path, err));
    }
}

}  // namespace

// The PID holding a flock on the directory, from /proc/locks.
long pin_root_owner(const std::string &path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        return 0;
    }
    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
        // "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"
        std::istringstream l(line);
        std::string n, type, mode, rw, dev_ino;
        long pid = 0;
        if (!(l >> n >> type >> mode >> rw >> pid >> dev_ino) || type != "FLOCK") {
            continue;
        }
        auto colon = dev_ino.rfind(':');
        if (colon != std::string::npos &&
            std::stoull(dev_ino.substr(colon + 1)) == static_cast<unsigned long long>(st.st_ino)) {
            return pid;
        }
    }
    return 0;
}

Datapath::Mapping::Mapping(const bpf_map *map, std::size_t len) : len_(len) {
    void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
    if (p == MAP_FAILED) {
        int err = -errno;
        throw std::runtime_error(error_text(std::string("mmap ") + bpf_map__name(map), err));
    }
    addr_ = p;
}

Datapath::Mapping::~Mapping() {
    if (addr_) {
        munmap(addr_, len_);
    }
}

Datapath::Detach::~Detach() {
    if (armed) {
        detach_all(root, log);
    }
}

// Reuses the pinned map of each of `maps` whose layout matches (before the object is
// loaded) and removes the pins of the others. Returns the maps adopted.
std::set<const bpf_map *> Datapath::adopt(std::span<bpf_map *const> maps) {
    std::set<const bpf_map *> adopted;
    for (bpf_map *map : maps) {
        std::string path = pin_path(root_, map);
        Fd pinned(bpf_obj_get(path.c_str()));
        if (!pinned) {
            continue;
        }
        std::string why = incompatibility(pinned.get(), map);
        if (!why.empty()) {
            log_("replacing pinned map " + path + ": " + why);
            unlink(path.c_str());
            continue;
        }
        if (int err = bpf_map__reuse_fd(map, pinned.get())) {  // takes a duplicate
            throw std::runtime_error(error_text("reuse pinned " + path, err));
        }
        adopted.insert(map);
        log_("adopted pinned map " + path);
    }
    return adopted;
}

// Pins those of `maps` (of a loaded object) that adopt() did not adopt.
void Datapath::pin_new(std::span<bpf_map *const> maps, const std::set<const bpf_map *> &adopted) {
    for (bpf_map *map : maps) {
        if (!adopted.count(map)) {
            pin_private(map, root_);
        }
    }
}

// Adopts the maps an earlier run pinned, when they fit, and pins the others.
void Datapath::load_udp(const Config &cfg) {
    udp_.reset(udp_bpf::open());
    if (!udp_) {
        throw std::runtime_error(error_text("open BPF object udp", -errno));
    }
    if (int err = bpf_map__set_max_entries(udp_->maps.udp_flows, cfg.global.udp_max_flows)) {
        throw std::runtime_error(error_text("size udp_flows", err));
    }
    auto maps = adopted_maps(*udp_);
    std::set<const bpf_map *> adopted = adopt(maps);
    if (int err = udp_bpf::load(udp_.get())) {
        throw std::runtime_error(error_text("load BPF programs (verifier log above)", err));
    }
    pin_new(maps, adopted);
}

// The shared maps (maps.bpf.h: services, counters, ...) of a later object are the UDP
// object's.
template <typename Skel>
void Datapath::share_maps(Skel &skel, const char *what) {
    std::pair<bpf_map *, const bpf_map *> shared[] = {
        {skel.maps.services, udp_->maps.services},
        {skel.maps.udp_addresses, udp_->maps.udp_addresses},
        {skel.maps.counters, udp_->maps.counters},
        {skel.maps.attachments, udp_->maps.attachments}};
    for (auto [map, from] : shared) {
        if (int err = bpf_map__reuse_fd(map, bpf_map__fd(from))) {
            throw std::runtime_error(
                error_text(std::string("share map ") + bpf_map__name(map) + " with " + what, err));
        }
    }
}

// The inline TCP object: its connection table outlives a run, like the UDP flows.
void Datapath::load_inline(const Config &cfg) {
    inline_.reset(tcp_inline_bpf::open());
    if (!inline_) {
        throw std::runtime_error(error_text("open BPF object tcp_inline", -errno));
    }
    if (int err =
            bpf_map__set_max_entries(inline_->maps.inline_conns, cfg.global.inline_max_conns)) {
        throw std::runtime_error(error_text("size inline_conns", err));
    }
    share_maps(*inline_, "tcp_inline");
    auto maps = adopted_maps(*inline_);
    std::set<const bpf_map *> adopted = adopt(maps);
    if (int err = tcp_inline_bpf::load(inline_.get())) {
        throw std::runtime_error(error_text("load inline TCP programs (verifier log above)", err));
    }
    pin_new(maps, adopted);
}

// The TCP object shares the UDP object's maps (maps.bpf.h: services, counters, ...), and
// brings its own: sockets live and die with this run, so they are pinned fresh.
void Datapath::load_tcp() {
    tcp_.reset(tcp_bpf::open());
    if (!tcp_) {
        throw std::runtime_error(error_text("open BPF object tcp", -errno));
    }
    share_maps(*tcp_, "tcp");
    if (int err = tcp_bpf::load(tcp_.get())) {
        throw std::runtime_error(error_text("load TCP programs (verifier log above)", err));
    }
    for (bpf_map *map : run_maps(*tcp_)) {
        unlink(pin_path(root_, map).c_str());  // a killed run's: its sockets are gone
        pin_private(map, root_);
    }

    tcp_maps_.listen = bpf_map__fd(tcp_->maps.tcp_listen);
    tcp_maps_.socks = bpf_map__fd(tcp_->maps.tcp_socks);
    tcp_maps_.targets = bpf_map__fd(tcp_->maps.tcp_targets);
    tcp_maps_.peers = bpf_map__fd(tcp_->maps.tcp_peers);
    stats_ = Mapping(tcp_->maps.tcp_stats, sizeof(pp_tcp_stats) * PP_MAX_SERVICES);
    tcp_maps_.stats = static_cast<pp_tcp_stats *>(stats_.get());
    conns_ = Mapping(tcp_->maps.tcp_conns, sizeof(pp_tcp_conn) * PP_MAX_TCP_CONNS);
    tcp_maps_.conns = static_cast<pp_tcp_conn *>(conns_.get());

    if (bpf_prog_attach(bpf_program__fd(tcp_->progs.sockmap_verdict), tcp_maps_.socks,
                        BPF_SK_SKB_STREAM_VERDICT, 0) != 0) {
        throw std::runtime_error(
            error_text("attach sk_skb stream verdict to tcp_socks (sockmap support)", -errno));
    }
    Fd netns(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!netns) {
        throw std::runtime_error(error_text("open /proc/self/ns/net", -errno));
    }
    steer_link_.reset(bpf_program__attach_netns(tcp_->progs.steer_tcp, netns.get()));
    if (!steer_link_) {
        throw std::runtime_error(
            error_text("attach sk_lookup program to this network namespace", -errno));
    }
}

Datapath::Datapath(const Config &cfg, LogFn log) : root_(cfg.global.bpffs), log_(std::move(log)) {
    prepare_pin_root(root_);
    lock_.reset(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!lock_) {
        int err = -errno;
        throw std::runtime_error(error_text("lock " + root_, err));
    }
    if (flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        long pid = err == EWOULDBLOCK ? pin_root_owner(root_) : 0;
        throw std::runtime_error(
            err == EWOULDBLOCK
                ? "another ppinject run owns " + root_ +
                      (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string())
                : error_text("lock " + root_, -err));
    }
    detach_.armed = true;  // from here a failure removes what is in place, by destructors
    load_udp(cfg);
    load_tcp();
    load_inline(cfg);
    apply(cfg);
}

Datapath::~Datapath() = default;

void Datapath::apply(const Config &cfg) {
    std::map<std::string, WantedInterface> want = wanted_interfaces(cfg);
    sync_services(cfg);
    sync_interfaces(want);
}

void Datapath::check(const Config &cfg) {
    wanted_interfaces(cfg);
}

void Datapath::sync_services(const Config &cfg) {
    ServiceEntries want = service_entries(cfg);
    // A port is marked before the first service on it exists and cleared after the last is
    // gone. Addresses before services: a new service's datagrams with unreachable ports are
    // refused from the moment its ports are served.
    int ports = bpf_map__fd(udp_->maps.udp_ports);
    sync_ports(ports, want.udp_ports, true);
    sync_map(bpf_map__fd(udp_->maps.udp_addresses), "udp_addresses", want.udp_addresses);
    // An inline service's TLVs before its services entry: its first SYN builds its header.
    std::vector<pp_inline_tlvs> tlvs(PP_MAX_SERVICES);
    for (const auto &svc : cfg.services) {
        if (svc.mode == TcpMode::inline_) {
            tlvs[svc.id] = inline_tlvs_of(svc);
        }
    }
    int tlv_fd = bpf_map__fd(inline_->maps.inline_tlvs);
    for (std::uint32_t id = 0; id < PP_MAX_SERVICES; id++) {
        if (bpf_map_update_elem(tlv_fd, &id, &tlvs[id], BPF_ANY) != 0) {
            throw std::runtime_error(error_text("update inline_tlvs map", -errno));
        }
    }
    sync_map(bpf_map__fd(udp_->maps.services), "services", want.services);
    sync_ports(ports, want.udp_ports, false);
}

void Datapath::sync_interfaces(const std::map<std::string, WantedInterface> &want) {
    int fd = bpf_map__fd(udp_->maps.attachments);
    std::uint32_t ingress_id = prog_id(udp_->progs.udp_ingress);
    std::uint32_t egress_id = prog_id(udp_->progs.udp_egress);
    std::uint32_t xdp_id = prog_id(udp_->progs.udp_xdp);
    std::uint32_t inline_ingress_id = prog_id(inline_->progs.inline_ingress);
    std::uint32_t inline_egress_id = prog_id(inline_->progs.inline_egress);

    // What an earlier run (or this one) recorded, by interface name.
    std::map<std::string, std::pair<std::uint32_t, pp_attachment>> recorded;
    for_each_entry<std::uint32_t, pp_attachment>(
        fd, [&](std::uint32_t ifindex, const pp_attachment &a) {
            recorded[std::string(a.ifname, strnlen(a.ifname, sizeof a.ifname))] = {ifindex, a};
        });

    for (const auto &[ifname, w] : want) {
        int ifindex = w.ifindex;
        pp_attachment a{};
        auto old = recorded.find(ifname);
        if (old != recorded.end() && old->second.first == static_cast<std::uint32_t>(ifindex)) {
            a = old->second.second;
        }
        std::strncpy(a.ifname, ifname.c_str(), sizeof a.ifname - 1);
        std::memcpy(a.services, w.services, sizeof a.services);
        if (((w.udp && !w.xdp) || w.egress || w.inline_tcp) && ensure_clsact(ifindex, ifname)) {
            a.created_clsact = 1;
            log_("created clsact qdisc on " + ifname);
        }
        // Record before attaching, so a crash in between still leaves a record to undo.
        std::uint32_t k = static_cast<std::uint32_t>(ifindex);
        if (bpf_map_update_elem(fd, &k, &a, BPF_ANY) != 0) {
            int err = -errno;
            throw std::runtime_error(error_text("record attachment of " + ifname, err));
        }
        std::vector<std::string> done;
        // The new UDP ingress first, then the other hook's goes: while both run, a datagram
        // injected at XDP is dropped at tc as forged; none passes without its header.
        if (w.udp && w.xdp) {
            a.xdp_mode = xdp_attach(ifindex, ifname, bpf_program__fd(udp_->progs.udp_xdp), is_ours);
            a.xdp_prog_id = xdp_id;
            done.push_back(std::string("XDP (") + xdp_mode_name(a.xdp_mode) + ")");
        } else if (w.udp) {
            tc_attach(ifindex, ifname, TcHook::ingress, TcFilter::udp,
                      bpf_program__fd(udp_->progs.udp_ingress));
            a.ingress_prog_id = ingress_id;
            done.push_back("tc ingress");
        }
        if (!(w.udp && w.xdp) && a.xdp_prog_id != 0) {
            xdp_detach(ifindex, ifname, is_ours);
            a.xdp_prog_id = 0;
            a.xdp_mode = PP_XDP_MODE_NONE;
        }
        if (!(w.udp && !w.xdp) &&
            (a.ingress_prog_id != 0 || tc_query(ifindex, TcHook::ingress, TcFilter::udp))) {
            tc_detach(ifindex, ifname, TcHook::ingress, TcFilter::udp);
            a.ingress_prog_id = 0;
        }
        if (w.egress) {
            tc_attach(ifindex, ifname, TcHook::egress, TcFilter::udp,
                      bpf_program__fd(udp_->progs.udp_egress));
            a.egress_prog_id = egress_id;
            done.push_back("tc egress");
        } else if (a.egress_prog_id != 0) {
            tc_detach(ifindex, ifname, TcHook::egress, TcFilter::udp);
            a.egress_prog_id = 0;
        }
        // Inline TCP: egress before ingress, so that no connection starts whose SYN-ACK
        // the egress program misses; on the way out the other way round.
        if (w.inline_tcp) {
            tc_attach(ifindex, ifname, TcHook::egress, TcFilter::inline_tcp,
                      bpf_program__fd(inline_->progs.inline_egress));
            a.inline_egress_prog_id = inline_egress_id;
            tc_attach(ifindex, ifname, TcHook::ingress, TcFilter::inline_tcp,
                      bpf_program__fd(inline_->progs.inline_ingress));
            a.inline_ingress_prog_id = inline_ingress_id;
            done.push_back("inline TCP tc ingress and egress");
        } else if (a.inline_ingress_prog_id != 0 || a.inline_egress_prog_id != 0) {
            tc_detach(ifindex, ifname, TcHook::ingress, TcFilter::inline_tcp);
            tc_detach(ifindex, ifname, TcHook::egress, TcFilter::inline_tcp);
            a.inline_ingress_prog_id = a.inline_egress_prog_id = 0;
        }
        if (bpf_map_update_elem(fd, &k, &a, BPF_ANY) != 0) {
            int err = -errno;
            throw std::runtime_error(error_text("record attachment of " + ifname, err));
        }
        std::string list;
        for (std::size_t i = 0; i < done.size(); i++) {
            list += (i == 0 ? "" : i + 1 == done.size() ? " and " : ", ") + done[i];
        }
        log_("attached " + list + " on " + ifname);
    }

    // Interfaces no service names any more, and records of interfaces deleted under the
    // running daemon (gone, or re-created under a new index and attached again above).
    for (const auto &[ifname, entry] : recorded) {
        auto [ifindex, a] = entry;
        auto w = want.find(ifname);
        if (w != want.end() && static_cast<std::uint32_t>(w->second.ifindex) == ifindex) {
            continue;
        }
        bool there = interface_is(static_cast<int>(ifindex), ifname);
        if (there) {
            xdp_detach(static_cast<int>(ifindex), ifname, is_ours);
            for (TcHook hook : {TcHook::ingress, TcHook::egress}) {
                for (TcFilter filter : kTcFilters) {
                    tc_detach(static_cast<int>(ifindex), ifname, hook, filter);
                }
            }
            if (a.created_clsact) {
                destroy_clsact(static_cast<int>(ifindex), ifname);
            }
        }
        if (bpf_map_delete_elem(fd, &ifindex) != 0) {
            int err = -errno;
            log_(error_text("forget the attachment of " + ifname, err));  // detach retries
        }
        log_(there ? "detached from " + ifname
                   : "forgot interface " + ifname + ": it is gone, and its filters with it");
    }
}

}  // namespace ppinject
