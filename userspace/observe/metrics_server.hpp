// A deliberately small HTTP/1.1 server for a Prometheus scrape endpoint and a health check:
// GET and HEAD on /metrics and /healthz, one request per connection (Connection: close), on
// its own thread. It knows nothing about BPF: the answers come from callbacks.
//
// One thread multiplexes every connection with poll(), and each connection has one deadline
// for its whole life (request in, response out), so a client that sends nothing, trickles a
// byte at a time or never reads its response is closed when its deadline passes and never
// holds up another scrape.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <thread>

#include "codec/address.hpp"
#include "sys/fd.hpp"

namespace ppinject {

struct MetricsServerOptions {
    // Budget of one connection from accept to the last byte of the response.
    std::chrono::milliseconds timeout{std::chrono::seconds(10)};
    // Request line and headers together; a larger request gets 431.
    std::size_t max_request_bytes = 8192;
    // Connections served at once; past this, new ones wait in the listen backlog.
    std::size_t max_connections = 32;
};

class MetricsServer {
  public:
    // Produces the /metrics body. Runs on the server's thread, once per GET or HEAD; an
    // exception becomes a 500 whose body is its what().
    using BodyFn = std::function<std::string()>;
    // Produces the /healthz answer: "" when healthy (200, body "ok"), else the reason on one
    // line (503, the reason as the body). Runs on the server's thread, once per GET or HEAD;
    // an exception is a 503 whose body is its what(): a check that cannot run is a failed
    // check. Without one, /healthz is 404.
    using HealthFn = std::function<std::string()>;

    // Binds and listens at `at` before returning (port 0 picks a free port; "[::]" takes
    // IPv4 too), then serves on a new thread. Throws std::runtime_error with one line such
    // as "metrics: bind 127.0.0.1:9477: Address already in use".
    MetricsServer(const Endpoint &at, BodyFn body, HealthFn health = {},
                  MetricsServerOptions opts = {});
    // stop().
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

    // Wakes the thread, closes the listening socket and every open connection, and joins.
    // Returns promptly whatever the clients do; idempotent. Not for use from the body callback.
    void stop();

    // Where it listens, with the port the kernel chose when asked for port 0.
    const Endpoint &local_endpoint() const { return local_; }

  private:
    void serve();

    BodyFn body_;
    HealthFn health_;
    MetricsServerOptions opts_;
    Endpoint local_;
    Fd listen_fd_;
    Fd wake_fd_;  // eventfd: stop() writes, the thread's poll() returns
    std::thread thread_;
};

}  // namespace ppinject
