// Whether this host serves every service its ppinject run set up: the answer of GET
// /healthz and of `ppinject status --check`, so that a BGP speaker (BIRD, ExaBGP) announces
// the service addresses only while it is true. One check for both: it reads the pinned maps
// (what the run put in the kernel) and the kernel's live state (interfaces, tc filters,
// listening sockets), from the daemon's own metrics thread or from another process in the
// run's network and mount namespaces.
//
// Healthy means: a run owns the pin root (holds its lock), and every service in the
// `services` map is served: a UDP service's interfaces (recorded in `attachments`) still
// exist and carry ppinject's tc ingress program (and egress for SPP); a TCP service has a
// listening socket on each of its addresses and ports, or, when transparent, a listener
// in `tcp_listen` for each address family it takes; an inline TCP service's interfaces
// exist and carry both inline filters (tc ingress and egress) the run recorded.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace ppinject {

struct HostHealth {
    // One line each, e.g. `udp service "dns": interface eth0 is gone`; empty when healthy.
    std::vector<std::string> problems;

    bool ok() const { return problems.empty(); }
    // "ok", or every problem on one line, joined by "; ".
    std::string summary() const;
};

// Checks the run whose pin root is `root`. Never throws: what cannot be read (no pins, a
// netlink error) is a problem like any other.
HostHealth check_host_health(const std::string &root);

// {"healthy": bool, "summary": "...", "problems": [...]}.
nlohmann::json to_json(const HostHealth &h);

}  // namespace ppinject
