// Network namespaces for tests: created with unique names, joined by veth pairs, removed
// by the destructor even when the test fails. Sockets can be opened inside a namespace
// from the test process itself.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "sys/fd.hpp"

namespace pptest {

// Runs a shell command on the host; a non-zero exit throws std::runtime_error with the
// command and its stderr. Returns stdout.
std::string sh(const std::string &cmd);

class Netns {
  public:
    // Creates namespace "ppt<pid>-<role>" with loopback up.
    explicit Netns(const std::string &role);
    ~Netns();
    Netns(const Netns &) = delete;
    Netns &operator=(const Netns &) = delete;

    const std::string &name() const { return name_; }
    // Runs `cmd` inside the namespace (ip netns exec) with sh(); returns stdout.
    std::string exec(const std::string &cmd) const;
    // `cmd` prefixed so it runs in this namespace but keeps the caller's mount namespace
    // (and so the host's bpffs): nsenter --net=/run/netns/NAME.
    std::string prefix() const;
    // `argv` run the same way, as an argument vector (for Child and run_process).
    std::vector<std::string> command(std::vector<std::string> argv) const;
    // socket(domain, type | SOCK_CLOEXEC, 0) created inside this namespace; throws
    // std::runtime_error if it cannot be.
    ppinject::Fd socket(int domain, int type) const;
    // Runs `f` with the calling thread inside this namespace, then returns to its own.
    void run_inside(const std::function<void()> &f) const;

  private:
    std::string name_;
};

// Removes the namespaces and /tmp files "ppt<PID>-..." of a test process that no longer
// exists (killed before its destructors ran; its children got SIGTERM, see Child). Every
// test binary does this first when run as root.
void remove_leftovers_of_killed_tests();

// A veth pair between two namespaces, with addresses ("192.0.2.1/24", "2001:db8::1/64").
// IPv6 addresses are added with nodad so they are usable at once.
void veth(const Netns &a, const std::string &a_if, const std::vector<std::string> &a_addrs,
          const Netns &b, const std::string &b_if, const std::vector<std::string> &b_addrs);

// `ppinject run --config CONFIG` started in `front` (keeping the host's bpffs), once it
// logs that it is running; a daemon that does not get there fails the test with its log.
std::unique_ptr<Child> start_ppinject_run(const Netns &front, const std::string &config);

// Reads /proc/net/snmp and /proc/net/snmp6 inside `ns` and returns the UDP checksum
// error counters (Udp InCsumErrors + Udp6 InCsumErrors, UdpLite excluded).
long udp_csum_errors(const Netns &ns);

}  // namespace pptest
