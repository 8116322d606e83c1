#include "observe/inspect.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <stdexcept>
#include <tuple>

#include "config/names.hpp"
#include "loader/map_iter.hpp"
#include "loader/pins.hpp"
#include "loader/xdp.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"
#include "tcp.skel.h"
#include "tcp_inline.skel.h"
#include "udp.skel.h"

namespace ppinject {
namespace {

// A pinned map of a run, opened by its name in the BPF object.
class PinnedMap {
  public:
    PinnedMap(const std::string &root, const bpf_map *map) {
        std::string path = pin_path(root, map);
        fd_.reset(bpf_obj_get(path.c_str()));
        if (!fd_) {
            int err = errno;
            throw std::runtime_error(
                err == ENOENT
                    ? "no ppinject state at " + root + " (" + bpf_map__name(map) +
                          " is not pinned): is `ppinject run` running in this mount namespace?"
                    : error_text("open " + path, -err));
        }
    }
    int fd() const { return fd_.get(); }

    // Calls f(key, value) for every entry.
    template <typename K, typename V, typename F>
    void for_each(F &&f) const {
        for_each_entry<K, V>(fd_.get(), std::forward<F>(f));
    }

    std::uint32_t max_entries() const { return max_entries_of(fd_.get()); }

    static std::uint32_t max_entries_of(int fd) {
        bpf_map_info info{};
        std::uint32_t len = sizeof info;
        return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.max_entries : 0;
    }

  private:
    Fd fd_;
};

double mono_now_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // the clock udp_ingress stamps flows with
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string name_of(const pp_service &v) {
    return std::string(v.name, strnlen(v.name, sizeof v.name));
}

// Fold the LPM keys of one service back into listen specs: keys that share protocol and
// prefix become one spec with consecutive ports joined into ranges.
std::vector<std::string> fold_listen(std::vector<pp_service_key> keys) {
    std::sort(keys.begin(), keys.end(), [](const pp_service_key &a, const pp_service_key &b) {
        int c = std::memcmp(a.addr, b.addr, sizeof a.addr);
        if (c != 0) {
            return c < 0;
        }
        if (a.prefixlen != b.prefixlen) {
            return a.prefixlen < b.prefixlen;
        }
        return ntohs(a.port) < ntohs(b.port);
    });
    std::vector<std::string> out;
    for (std::size_t i = 0; i < keys.size();) {
        std::size_t j = i;
        unsigned first = ntohs(keys[i].port), last = first;
        while (j + 1 < keys.size() && keys[j + 1].prefixlen == keys[i].prefixlen &&
               std::memcmp(keys[j + 1].addr, keys[i].addr, 16) == 0 &&
               ntohs(keys[j + 1].port) == last + 1) {
            j++;
            last++;
        }
        std::array<std::uint8_t, 16> raw;
        std::memcpy(raw.data(), keys[i].addr, 16);
        IpAddress addr = IpAddress::v6(raw);
        unsigned bits = keys[i].prefixlen - PP_SERVICE_KEY_FIXED_BITS;
        unsigned prefix = addr.is_v4() ? bits - 96 : bits;
        unsigned full = addr.is_v4() ? 32 : 128;
        std::string a = addr.to_string();
        if (prefix != full) {
            a += "/" + std::to_string(prefix);
        }
        if (!addr.is_v4()) {
            a = "[" + a + "]";
        }
        out.push_back(first == last ? fmt::format("{}:{}", a, first)
                                    : fmt::format("{}:{}-{}", a, first, last));
        i = j + 1;
    }
    return out;
}

pp_counters sum_counters(int fd, std::uint32_t id) {
    int ncpu = libbpf_num_possible_cpus();
    std::vector<pp_counters> per_cpu(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
    pp_counters total{};
    if (bpf_map_lookup_elem(fd, &id, per_cpu.data()) != 0) {
        return total;
    }
    for (const auto &c : per_cpu) {
        for (const auto &info : kCounters) {
            std::uint64_t sum = counter_value(total, info) + counter_value(c, info);
            std::memcpy(reinterpret_cast<char *>(&total) + info.offset, &sum, sizeof sum);
        }
    }
    return total;
}

}  // namespace

// A constant the tables lack prints as these functions always printed it: "?" for a
// protocol or header, the default for udp_header and on_error.
std::string protocol_name(std::uint8_t protocol) {
    return std::string(name_of_kernel(kProtocolNames, protocol).value_or("?"));
}
std::string header_name(std::uint8_t header) {
    return std::string(name_of_kernel(kHeaderModeNames, header).value_or("?"));
}
std::string udp_header_name(std::uint8_t mode) {
    return std::string(name_of_kernel(kUdpHeaderPolicyNames, mode).value_or("first"));
}
std::string on_error_name(std::uint8_t mode) {
    return std::string(name_of_kernel(kOnErrorNames, mode).value_or("drop"));
}

std::string ServiceView::name() const {
    return name_of(value);
}

std::vector<std::pair<std::string_view, std::uint64_t>> counters_of(const ServiceView &svc) {
    std::vector<std::pair<std::string_view, std::uint64_t>> out;
    if (!svc.kernel_counted()) {
        for (const auto &info : kTcpStats) {
            out.emplace_back(info.name, counter_value(svc.tcp, info));
        }
    } else {
        for (const auto &info : kCounters) {
            out.emplace_back(info.name, counter_value(svc.counters, info));
        }
    }
    return out;
}

Snapshot read_snapshot(const std::string &root, FlowTable flow_table) {
    const udp_bpf &udp = udp_object();
    PinnedMap services(root, udp.maps.services), counters(root, udp.maps.counters),
        flows(root, udp.maps.udp_flows), attachments(root, udp.maps.attachments);
    Snapshot s;

    std::map<std::uint32_t, std::pair<ServiceView, std::vector<pp_service_key>>> by_id;
    services.for_each<pp_service_key, pp_service>(
        [&](const pp_service_key &k, const pp_service &v) {
            auto &[view, keys] = by_id[v.id];
            view.value = v;
            view.protocol = k.protocol;
            keys.push_back(k);
        });
    // Absent when no run has loaded the TCP object yet.
    Fd tcp_stats(bpf_obj_get(pin_path(root, tcp_object().maps.tcp_stats).c_str()));
    for (auto &[id, entry] : by_id) {
        auto &[view, keys] = entry;
        view.keys = std::move(keys);
        view.listen = fold_listen(view.keys);
        view.counters = sum_counters(counters.fd(), id);
        if (tcp_stats) {
            bpf_map_lookup_elem(tcp_stats.get(), &id, &view.tcp);
        }
        s.services.push_back(std::move(view));
    }

    attachments.for_each<std::uint32_t, pp_attachment>(
        [&](std::uint32_t ifindex, const pp_attachment &a) {
            s.attachments.push_back({std::string(a.ifname, strnlen(a.ifname, sizeof a.ifname)),
                                     static_cast<int>(ifindex), a});
        });
    std::sort(s.attachments.begin(), s.attachments.end(),
              [](const auto &a, const auto &b) { return a.ifname < b.ifname; });

    if (flow_table == FlowTable::count) {
        flows.for_each<pp_flow_key, pp_flow>(
            [&](const pp_flow_key &, const pp_flow &) { s.flows++; });
    }
    s.max_flows = flows.max_entries();
    // Absent when no run has loaded the inline TCP object yet.
    Fd conns(bpf_obj_get(pin_path(root, tcp_inline_object().maps.inline_conns).c_str()));
    if (conns) {
        s.inline_table = true;
        s.max_inline_conns = PinnedMap::max_entries_of(conns.get());
        if (flow_table == FlowTable::count) {
            for_each_entry<pp_flow_key, pp_inline_conn>(
                conns.get(),
                [&](const pp_flow_key &, const pp_inline_conn &) { s.inline_conns++; });
        }
    }
    return s;
}

namespace {

// The entries of a pinned table keyed by pp_flow_key whose values carry service_id,
// created_ns and last_seen_ns (udp_flows, inline_conns), most recently active first.
template <typename V>
std::vector<TableEntry<V>> read_table(const std::string &root, const bpf_map *map) {
    PinnedMap services(root, udp_object().maps.services), table(root, map);
    std::map<std::uint32_t, std::string> names;
    services.for_each<pp_service_key, pp_service>(
        [&](const pp_service_key &, const pp_service &v) { names[v.id] = name_of(v); });

    double now = mono_now_s();
    std::vector<TableEntry<V>> out;
    table.for_each<pp_flow_key, V>([&](const pp_flow_key &k, const V &v) {
        std::array<std::uint8_t, 16> c, svc;
        std::memcpy(c.data(), k.client_addr, 16);
        std::memcpy(svc.data(), k.service_addr, 16);
        TableEntry<V> e;
        e.client = {IpAddress::v6(c), ntohs(k.client_port)};
        e.service = {IpAddress::v6(svc), ntohs(k.service_port)};
        e.value = v;
        e.service_name = names.count(v.service_id) ? names[v.service_id] : "?";
        e.age_s = now - static_cast<double>(v.created_ns) / 1e9;
        e.idle_s = now - static_cast<double>(v.last_seen_ns) / 1e9;
        out.push_back(std::move(e));
    });
    std::sort(out.begin(), out.end(),
              [](const auto &a, const auto &b) { return a.idle_s < b.idle_s; });
    return out;
}

}  // namespace

std::vector<FlowView> read_flows(const std::string &root) {
    return read_table<pp_flow>(root, udp_object().maps.udp_flows);
}

std::vector<ConnView> read_conns(const std::string &root) {
    return read_table<pp_inline_conn>(root, tcp_inline_object().maps.inline_conns);
}

std::vector<std::string_view> inline_state_words(const pp_inline_conn &c) {
    const unsigned flags = c.flags | c.flags_backend;  // distinct bits, one writer each
    static constexpr std::pair<std::uint8_t, std::string_view> kWords[] = {
        {PP_INLINE_HDR_SENT, "header-sent"},      {PP_INLINE_HDR_ACKED, "header-acked"},
        {PP_INLINE_FIN_CLIENT, "fin-client"},     {PP_INLINE_FIN_BACKEND, "fin-backend"},
        {PP_INLINE_RESET_CLIENT, "reset-client"}, {PP_INLINE_RESET_BACKEND, "reset-backend"},
    };
    std::vector<std::string_view> out;
    for (const auto &[bit, word] : kWords) {
        if (flags & bit) {
            out.push_back(word);
        }
    }
    if (out.empty()) {
        out.push_back("syn");  // state made by the SYN, no header out yet
    }
    return out;
}

std::string render_text(const Snapshot &s) {
    std::string out;
    for (const auto &svc : s.services) {
        const pp_service &v = svc.value;
        std::string mode = header_name(v.header);
        if (svc.protocol == IPPROTO_UDP && v.header == PP_HDR_V2) {
            mode += " " + udp_header_name(v.udp_header);
        }
        if (svc.protocol == IPPROTO_UDP) {
            mode += ", on_error " + on_error_name(v.on_error);
        } else if (svc.is_inline()) {
            mode += fmt::format(", mode inline, idle {}",
                                format_duration(std::chrono::nanoseconds(v.flow_timeout_ns)));
        } else {
            mode += (v.flags & PP_SVC_TRANSPARENT) ? ", mode relay, transparent" : ", mode relay";
        }
        out += fmt::format("service {} (id {}): {} {}\n", name_of(v), v.id,
                           protocol_name(svc.protocol), mode);
        for (const auto &l : svc.listen) {
            out += fmt::format("  listen  {}\n", l);
        }
        for (const auto &[name, value] : counters_of(svc)) {
            out += fmt::format("  {:<20} {}\n", name, value);
        }
    }
    for (const auto &a : s.attachments) {
        std::string ingress = a.value.xdp_prog_id
                                  ? fmt::format("xdp ({})", xdp_mode_name(a.value.xdp_mode))
                              : a.value.ingress_prog_id ? "tc"
                                                        : "-";
        out += fmt::format("interface {}: ingress {}, egress {}{}{}\n", a.ifname, ingress,
                           a.value.egress_prog_id ? "tc" : "-",
                           a.value.inline_ingress_prog_id || a.value.inline_egress_prog_id
                               ? fmt::format(", inline tcp ingress {}, egress {}",
                                             a.value.inline_ingress_prog_id ? "tc" : "-",
                                             a.value.inline_egress_prog_id ? "tc" : "-")
                               : "",
                           a.value.created_clsact ? " (clsact created by ppinject)" : "");
    }
    out += fmt::format("udp flows: {} of {}\n", s.flows, s.max_flows);
    if (s.inline_table) {
        out +=
            fmt::format("inline tcp connections: {} of {}\n", s.inline_conns, s.max_inline_conns);
    }
    return out;
}

nlohmann::json to_json(const Snapshot &s) {
    nlohmann::json j;
    j["services"] = nlohmann::json::array();
    for (const auto &svc : s.services) {
        const pp_service &v = svc.value;
        nlohmann::json counters = nlohmann::json::object();
        for (const auto &[name, value] : counters_of(svc)) {
            counters[std::string(name)] = value;
        }
        nlohmann::json js = {{"id", v.id},
                             {"name", name_of(v)},
                             {"protocol", protocol_name(svc.protocol)},
                             {"header", header_name(v.header)},
                             {"on_error", on_error_name(v.on_error)},
                             {"listen", svc.listen},
                             {"counters", counters}};
        if (svc.protocol == IPPROTO_UDP) {
            js["udp_header"] = udp_header_name(v.udp_header);
            js["flow_timeout_s"] = static_cast<double>(v.flow_timeout_ns) / 1e9;
        } else {
            js["mode"] = svc.is_inline() ? "inline" : "relay";
            js["transparent"] = (v.flags & PP_SVC_TRANSPARENT) != 0;
            if (svc.is_inline()) {
                js["idle_timeout_s"] = static_cast<double>(v.flow_timeout_ns) / 1e9;
            }
        }
        j["services"].push_back(js);
    }
    j["attachments"] = nlohmann::json::array();
    for (const auto &a : s.attachments) {
        j["attachments"].push_back({{"interface", a.ifname},
                                    {"ifindex", a.ifindex},
                                    {"ingress_prog_id", a.value.ingress_prog_id},
                                    {"egress_prog_id", a.value.egress_prog_id},
                                    {"xdp_prog_id", a.value.xdp_prog_id},
                                    {"inline_ingress_prog_id", a.value.inline_ingress_prog_id},
                                    {"inline_egress_prog_id", a.value.inline_egress_prog_id},
                                    {"xdp_mode", xdp_mode_name(a.value.xdp_mode)},
                                    {"ingress_hook", a.value.xdp_prog_id       ? "xdp"
                                                     : a.value.ingress_prog_id ? "tc"
                                                                               : "-"},
                                    {"created_clsact", a.value.created_clsact != 0}});
    }
    j["udp_flows"] = {{"count", s.flows}, {"max", s.max_flows}};
    j["inline_conns"] = s.inline_table
                            ? nlohmann::json{{"count", s.inline_conns}, {"max", s.max_inline_conns}}
                            : nlohmann::json(nullptr);
    return j;
}

std::string render_text(const std::vector<FlowView> &flows) {
    std::string out = fmt::format("{:<42} {:<42} {:<12} {:>8} {:>8} {:>10} {:>12}\n", "client",
                                  "service", "name", "age_s", "idle_s", "packets", "bytes");
    for (const auto &f : flows) {
        out += fmt::format("{:<42} {:<42} {:<12} {:>8.1f} {:>8.1f} {:>10} {:>12}\n",
                           f.client.to_string(), f.service.to_string(), f.service_name, f.age_s,
                           f.idle_s, f.value.packets, f.value.bytes);
    }
    out += fmt::format("{} flows\n", flows.size());
    return out;
}

nlohmann::json to_json(const std::vector<FlowView> &flows) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto &f : flows) {
        j.push_back({{"client", f.client.to_string()},
                     {"service", f.service.to_string()},
                     {"service_name", f.service_name},
                     {"service_id", f.value.service_id},
                     {"age_s", f.age_s},
                     {"idle_s", f.idle_s},
                     {"packets", f.value.packets},
                     {"bytes", f.value.bytes}});
    }
    return j;
}

std::string render_text(const std::vector<ConnView> &conns) {
    std::string out =
        fmt::format("{:<42} {:<42} {:<12} {:>8} {:>8} {:>10} {:>10} {:>12} {:>12} {:>4} {}\n",
                    "client", "dialled", "name", "age_s", "idle_s", "pkts_in", "pkts_out",
                    "bytes_in", "bytes_out", "hdr", "state");
    for (const auto &c : conns) {
        out += fmt::format(
            "{:<42} {:<42} {:<12} {:>8.1f} {:>8.1f} {:>10} {:>10} {:>12} {:>12} {:>4} {}\n",
            c.client.to_string(), c.service.to_string(), c.service_name, c.age_s, c.idle_s,
            c.value.packets_in, c.value.packets_out, c.value.bytes_in, c.value.bytes_out,
            c.value.hdr_len, fmt::join(inline_state_words(c.value), ","));
    }
    out += fmt::format("{} connections\n", conns.size());
    return out;
}

nlohmann::json to_json(const std::vector<ConnView> &conns) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto &c : conns) {
        std::vector<std::string> words;
        for (auto w : inline_state_words(c.value)) {
            words.emplace_back(w);
        }
        j.push_back({{"client", c.client.to_string()},
                     {"dialled", c.service.to_string()},
                     {"service_name", c.service_name},
                     {"service_id", c.value.service_id},
                     {"age_s", c.age_s},
                     {"idle_s", c.idle_s},
                     {"packets_in", c.value.packets_in},
                     {"packets_out", c.value.packets_out},
                     {"bytes_in", c.value.bytes_in},
                     {"bytes_out", c.value.bytes_out},
                     {"header_len", c.value.hdr_len},
                     {"state", words}});
    }
    return j;
}

}  // namespace ppinject
