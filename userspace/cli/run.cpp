#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "loader/libbpf_log.hpp"
#include "config/config.hpp"
#include "loader/datapath.hpp"
#include "observe/host_health.hpp"
#include "observe/inspect.hpp"
#include "observe/metrics.hpp"
#include "observe/metrics_server.hpp"
#include "loader/privileges.hpp"
#include "tcp/server.hpp"

namespace ppinject::cli {
namespace {

void log_line(const std::string &msg) {
    std::fprintf(stderr, "ppinject: %s\n", msg.c_str());
}

}  // namespace

int run(const RunOptions &opts) {
    Config cfg;
    try {
        cfg = load_config(opts.config);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    if (std::string why = capability_error(kRunCaps); !why.empty()) {
        log_line("run " + why + ": to load BPF programs, attach them and mount bpffs");
        return 1;
    }
    set_libbpf_logger([](std::string_view line) { log_line("libbpf: " + std::string(line)); },
                      opts.verbose);

    // Two sockets per TCP connection: take every descriptor the hard limit allows.
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }

    // Signals are taken synchronously by sigwait() below; block them before anything starts.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    // splice(2) into a socket has no MSG_NOSIGNAL: a peer's reset that lands during one
    // splice call makes the next one fail with EPIPE, and SIGPIPE would end the daemon.
    // The error ends only that connection.
    signal(SIGPIPE, SIG_IGN);

    try {
        Datapath dp(cfg, log_line);
        tcp::Server tcp(cfg, dp.tcp_maps(), log_line);
        // Each scrape reads the pinned maps, as `status` does; declared after dp, so the
        // server stops before the data path detaches.
        auto metrics_body = [root = dp.pin_root()] {
            return render_prometheus(read_snapshot(root), BuildInfo{PPINJECT_VERSION});
        };
        // /healthz is `status --check`: the same check, from the same pins.
        auto health = [root = dp.pin_root()] {
            HostHealth h = check_host_health(root);
            return h.ok() ? std::string() : h.summary();
        };
        std::unique_ptr<MetricsServer> metrics;
        if (cfg.global.metrics) {
            metrics = std::make_unique<MetricsServer>(*cfg.global.metrics, metrics_body, health);
            log_line("metrics: http://" + metrics->local_endpoint().to_string() +
                     "/metrics, health: /healthz");
        }
        log_line("running: " + std::to_string(cfg.services.size()) + " services, maps pinned at " +
                 dp.pin_root() + "; SIGHUP reloads, SIGINT/SIGTERM detaches");
        for (;;) {
            int sig = 0;
            sigwait(&sigs, &sig);
            if (sig != SIGHUP) {
                log_line(std::string("stopping on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
                break;
            }
            try {
                Config next = load_config(opts.config);
                if (next.global.bpffs != cfg.global.bpffs ||
                    next.global.udp_max_flows != cfg.global.udp_max_flows) {
                    log_line(
                        "reload: bpffs and udp_max_flows need a restart; keeping the old ones");
                    next.global.bpffs = cfg.global.bpffs;
                    next.global.udp_max_flows = cfg.global.udp_max_flows;
                }
                // What can be refused without changing anything first (an interface
                // that does not exist), then new listeners: a failure there changes nothing.
                Datapath::check(next);
                std::unique_ptr<MetricsServer> fresh;
                bool new_metrics = next.global.metrics != cfg.global.metrics;
                if (new_metrics && next.global.metrics) {
                    fresh =
                        std::make_unique<MetricsServer>(*next.global.metrics, metrics_body, health);
                }
                tcp.apply(next);
                dp.apply(next);
                if (new_metrics) {
                    metrics = std::move(fresh);
                }
                cfg = std::move(next);
                log_line("reloaded " + opts.config + ": " + std::to_string(cfg.services.size()) +
                         " services");
            } catch (const std::exception &e) {
                log_line(std::string("reload failed, nothing changed: ") + e.what());
            }
        }
    } catch (const std::exception &e) {
        log_line(e.what());
        return 1;
    }
    log_line("detached");
    return 0;
}

}  // namespace ppinject::cli
