// The kernel side of a configuration: BPF objects loaded, maps pinned under the pin root,
// `services` filled, TC programs attached. Construction does it all or nothing; a clean
// stop undoes it all. What a killed run leaves keeps working (TC filters live in the
// kernel, not in this process) until a new run adopts it or `ppinject detach` removes it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"

struct udp_bpf;
struct tcp_bpf;
struct bpf_link;
struct pp_tcp_stats;
struct pp_tcp_conn;

namespace ppinject {

using LogFn = std::function<void(const std::string &)>;

// PID of the `ppinject run` that owns pin root `root` (holds its lock), or 0.
long pin_root_owner(const std::string &root);

class Datapath {
  public:
    // Loads and attaches `cfg`. Pinned maps an earlier run left are adopted when their
    // layout matches (live flows and counters carry on) and replaced otherwise; its
    // filters are replaced atomically. On failure everything is removed and
    // std::runtime_error says what failed.
    Datapath(const Config &cfg, LogFn log);
    // Detaches every filter, deletes the clsact qdiscs ppinject created, unpins the maps.
    ~Datapath();
    Datapath(const Datapath &) = delete;
    Datapath &operator=(const Datapath &) = delete;

    // Applies a new configuration to the running data path: services added, changed and
    // removed in the map, interfaces attached and detached. Entries of unchanged services
    // and live flows are not disturbed. Throws on failure (the old state may be partly
    // replaced; the caller logs it and keeps running).
    void apply(const Config &cfg);

    const std::string &pin_root() const { return root_; }

    // The TCP maps the acceptor fills: listening sockets by PP_TCP_LISTEN_SLOT, spliced
    // sockets and their peers by cookie, and tcp_stats mapped into this process.
    struct TcpMaps {
        int listen = -1;
        int socks = -1;    // with the verdict program
        int targets = -1;  // the same sockets, as redirect targets
        int peers = -1;
        pp_tcp_stats *stats = nullptr;  // PP_MAX_SERVICES entries, by service id
        pp_tcp_conn *conns = nullptr;   // PP_MAX_TCP_CONNS entries, by connection slot
    };
    const TcpMaps &tcp_maps() const { return tcp_maps_; }

  private:
    void load_tcp();
    void release_tcp();
    void sync_services(const Config &cfg);
    void sync_interfaces(const Config &cfg);

    std::string root_;
    LogFn log_;
    struct SkelDeleter {
        void operator()(udp_bpf *s) const;
        void operator()(tcp_bpf *s) const;
        void operator()(bpf_link *l) const;
    };
    std::unique_ptr<udp_bpf, SkelDeleter> udp_;
    std::unique_ptr<tcp_bpf, SkelDeleter> tcp_;
    std::unique_ptr<bpf_link, SkelDeleter> steer_link_;  // sk_lookup on this netns
    TcpMaps tcp_maps_;
    std::size_t stats_len_ = 0;  // bytes of the tcp_stats mapping
    std::size_t conns_len_ = 0;  // bytes of the tcp_conns mapping
    int lock_fd_ = -1;
};

}  // namespace ppinject
