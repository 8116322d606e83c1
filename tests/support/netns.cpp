#include "support/netns.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <filesystem>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace pptest {

std::string sh(const std::string &cmd) {
    ProcessResult r = run_process({"/bin/sh", "-c", cmd});
    if (r.exit_code != 0) {
        throw std::runtime_error("command failed (" + std::to_string(r.exit_code) + "): " + cmd +
                                 ": " + r.err);
    }
    return r.out;
}

Netns::Netns(const std::string &role) {
    static std::atomic<int> seq{0};
    name_ = "ppt" + std::to_string(getpid()) + "-" + std::to_string(seq++) + "-" + role;
    sh("ip netns add " + name_);
    try {
        // No duplicate address detection: with it, IPv6 is unusable for a second or so
        // after a link comes up, and the first datagrams are lost.
        exec(
            "ip link set lo up && sysctl -qw net.ipv6.conf.all.accept_dad=0 "
            "net.ipv6.conf.default.accept_dad=0");
    } catch (...) {
        run_process({"ip", "netns", "del", name_});
        throw;
    }
}

Netns::~Netns() {
    run_process({"ip", "netns", "del", name_});
}

namespace {

// True for "ppt<PID>-..." when no process PID exists.
bool of_dead_test(const std::string &name) {
    unsigned long pid = 0;
    if (name.rfind("ppt", 0) != 0) {
        return false;
    }
    const char *digits = name.c_str() + 3, *end = name.c_str() + name.size();
    auto [rest, err] = std::from_chars(digits, end, pid);
    if (err != std::errc() || rest == digits || rest == end || *rest != '-') {
        return false;
    }
    return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

void remove_leftovers_of_killed_tests() {
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator("/run/netns", ec)) {
        if (of_dead_test(entry.path().filename())) {
            run_process({"ip", "netns", "del", entry.path().filename()});
        }
    }
    for (const auto &entry : std::filesystem::directory_iterator("/tmp", ec)) {
        if (of_dead_test(entry.path().filename())) {
            std::filesystem::remove(entry.path(), ec);
        }
    }
}

std::string Netns::exec(const std::string &cmd) const {
    return sh("ip netns exec " + name_ + " sh -c '" + cmd + "'");
}

std::string Netns::prefix() const {
    return "nsenter --net=/run/netns/" + name_ + " ";
}

std::vector<std::string> Netns::command(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"nsenter", "--net=/run/netns/" + name_});
    return argv;
}

std::unique_ptr<Child> start_ppinject_run(const Netns &front, const std::string &config) {
    auto run =
        std::make_unique<Child>(front.command({ppinject_binary(), "run", "--config", config}));
    if (!run->wait_for_output("running")) {
        ADD_FAILURE() << "ppinject run did not start:\n" << run->log();
    }
    return run;
}

void Netns::run_inside(const std::function<void()> &f) const {
    ppinject::Fd self(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    ppinject::Fd target(open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!self || !target || setns(target.get(), CLONE_NEWNET) != 0) {
        int err = -errno;
        throw std::runtime_error(ppinject::error_text("enter netns " + name_, err));
    }
    // Back to the thread's own namespace however f() ends.
    struct Return {
        int ns;
        ~Return() {
            if (setns(ns, CLONE_NEWNET) != 0) {
                std::abort();  // the test thread would stay in the wrong namespace
            }
        }
    } back{self.get()};
    f();
}

ppinject::Fd Netns::socket(int domain, int type) const {
    ppinject::Fd fd;
    run_inside([&] { fd.reset(::socket(domain, type | SOCK_CLOEXEC, 0)); });
    if (!fd) {
        throw std::runtime_error("socket in " + name_ + ": " + std::strerror(errno));
    }
    return fd;
}

void veth(const Netns &a, const std::string &a_if, const std::vector<std::string> &a_addrs,
          const Netns &b, const std::string &b_if, const std::vector<std::string> &b_addrs) {
    sh("ip link add " + a_if + " netns " + a.name() + " type veth peer name " + b_if + " netns " +
       b.name());
    struct End {
        const Netns &ns;
        const std::string &ifname;
        const std::vector<std::string> &addrs;
    };
    // Up first, then the addresses: an IPv6 address added to a link that is still down
    // left the first neighbour solicitation for it unanswered, so the first IPv6
    // connection waited a second for the next one (every time, on 6.18).
    for (const End &end : {End{a, a_if, a_addrs}, End{b, b_if, b_addrs}}) {
        end.ns.exec("ip link set " + end.ifname + " up");
    }
    for (const End &end : {End{a, a_if, a_addrs}, End{b, b_if, b_addrs}}) {
        for (const auto &addr : end.addrs) {
            bool v6 = addr.find(':') != std::string::npos;
            end.ns.exec("ip addr add " + addr + " dev " + end.ifname + (v6 ? " nodad" : ""));
        }
    }
}

long udp_csum_errors(const Netns &ns) {
    long total = 0;
    // /proc/net/snmp: a "Udp:" header line with names, then a "Udp:" line with values.
    std::istringstream snmp(ns.exec("cat /proc/net/snmp"));
    std::string names, line;
    while (std::getline(snmp, line)) {
        if (line.rfind("Udp: ", 0) != 0) {
            continue;
        }
        if (names.empty()) {
            names = line;
            continue;
        }
        std::istringstream n(names), v(line);
        std::string name, value;
        while (n >> name && v >> value) {
            if (name == "InCsumErrors") {
                total += std::stol(value);
            }
        }
        names.clear();
    }
    std::istringstream snmp6(ns.exec("cat /proc/net/snmp6"));
    while (std::getline(snmp6, line)) {
        std::istringstream l(line);
        std::string name;
        long value = 0;
        if (l >> name >> value && name == "Udp6InCsumErrors") {
            total += value;
        }
    }
    return total;
}

}  // namespace pptest
