// One relayed TCP connection as its worker holds it: what every connection has from accept
// to close. A relay (tcp/relay.hpp) adds its own state once the header is written. A new
// Conn is made for each accepted connection and destroyed when it ends.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sys/fd.hpp"
#include "sys/kernel.hpp"
#include "config/header.hpp"
#include "tcp/service.hpp"

namespace ppinject::tcp {

using Clock = std::chrono::steady_clock;

// Sides of a connection, indexing its sockets: bytes from side i go to side 1 - i.
constexpr int kClient = 0;
constexpr int kBackend = 1;

class Relay;

struct Conn {
    Conn(std::uint32_t id, std::uint32_t gen, std::shared_ptr<const ServiceRt> svc,
         pp_tcp_stats *stats, Fd client)
        : id(id), gen(gen), svc(std::move(svc)), stats(stats) {
        fd[kClient] = std::move(client);
    }

    std::uint32_t id;   // slot in its worker
    std::uint32_t gen;  // the slot's generation: events of an earlier connection do not match
    std::shared_ptr<const ServiceRt> svc;
    pp_tcp_stats *stats;  // the service's entry of tcp_stats
    Fd fd[2];             // by side; the backend's once a connect is under way
    enum class State { connecting, writing_header, relaying } state = State::connecting;
    ConnectionFacts facts;
    std::size_t backend = 0;  // index of the backend tried now
    std::size_t tried = 0;
    Clock::time_point deadline;  // connect timeout, then SNI wait
    bool connected = false;
    bool sni_pending = false;
    bool client_fin = false;  // the client sent FIN before the relay started
    // Client bytes were waiting when the header went out: it was sent with MSG_MORE, to
    // leave in one segment with them; `corked` until the first of them (or a FIN) follows.
    bool client_waiting = false, corked = false;
    std::string sni;
    std::vector<std::uint8_t> header;
    std::size_t header_len = 0, header_off = 0;
    Clock::time_point last_active = Clock::now();
    std::unique_ptr<Relay> relay;  // once relaying
};

// Adds `n` to one of the connection's service counters.
inline void count(const Conn &c, __u64 pp_tcp_stats::*field, std::int64_t n = 1) {
    std::atomic_ref<__u64>(c.stats->*field).fetch_add(static_cast<__u64>(n));
}

// Payload the daemon (or its verdict) wrote from side `from` to the other.
inline void count_relayed(const Conn &c, int from, std::int64_t n) {
    count(
        c,
        from == kClient ? &pp_tcp_stats::tcp_bytes_to_backend : &pp_tcp_stats::tcp_bytes_to_client,
        n);
}

}  // namespace ppinject::tcp
