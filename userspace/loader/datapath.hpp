// The kernel side of a configuration: BPF objects loaded, maps pinned under the pin root,
// `services` filled, TC (and, for attach = "xdp", XDP) programs attached. Construction does
// it all or nothing; a clean stop undoes it all. What a killed run leaves keeps working (TC
// filters and XDP programs live in the kernel, not in this process) until a new run adopts
// it or `ppinject detach` removes it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>

#include "config/config.hpp"
#include "loader/skeleton.hpp"
#include "sys/fd.hpp"

struct udp_bpf;
struct tcp_bpf;
struct tcp_inline_bpf;
struct pp_tcp_stats;
struct pp_tcp_conn;

namespace ppinject {

using LogFn = std::function<void(const std::string &)>;

struct WantedInterface;

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
    // and live flows are not disturbed. Throws on failure: an interface that does not exist
    // changes nothing; a later failure (the kernel refusing an attach or a map update) may
    // leave the old state partly replaced, which the health check then reports. The caller
    // logs it and keeps running.
    void apply(const Config &cfg);
    // Throws what apply() would refuse before changing anything (an interface that does not
    // exist), so a reload can fail before other parts (the TCP listeners) change.
    static void check(const Config &cfg);

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
    std::set<const bpf_map *> adopt(std::span<bpf_map *const> maps);
    void pin_new(std::span<bpf_map *const> maps, const std::set<const bpf_map *> &adopted);
    template <typename Skel>
    void share_maps(Skel &skel, const char *what);
    void load_udp(const Config &cfg);
    void load_tcp();
    void load_inline(const Config &cfg);
    void sync_services(const Config &cfg);
    void sync_interfaces(const std::map<std::string, WantedInterface> &want);

    // An array map mmap()ed into this process, unmapped when this goes.
    class Mapping {
      public:
        Mapping() = default;
        Mapping(const bpf_map *map, std::size_t len);  // throws
        ~Mapping();
        Mapping &operator=(Mapping &&o) noexcept {
            std::swap(addr_, o.addr_);
            std::swap(len_, o.len_);
            return *this;
        }
        void *get() const { return addr_; }

      private:
        void *addr_ = nullptr;
        std::size_t len_ = 0;
    };
    // Runs detach_all() on the pin root when it goes: a clean stop, or a failed start
    // (nothing half-attached, whatever this run or a leftover put in place).
    struct Detach {
        const std::string &root;
        const LogFn &log;
        bool armed = false;  // once the pin root is this run's
        ~Detach();
    };

    // Members in the order of creation; destroyed in reverse, which is the order of
    // teardown: inline TCP object, sk_lookup link, mappings, TCP object, filters and pins,
    // UDP object, lock.
    std::string root_;
    LogFn log_;
    Fd lock_;  // flock on the pin root: one run per pin root
    Skeleton<udp_bpf> udp_;
    Detach detach_{root_, log_};
    Skeleton<tcp_bpf> tcp_;
    Mapping stats_, conns_;
    Link steer_link_;  // sk_lookup on this netns
    TcpMaps tcp_maps_;
    Skeleton<tcp_inline_bpf> inline_;
};

}  // namespace ppinject
