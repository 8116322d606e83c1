// One acceptor thread: its own epoll set, its share of every TCP service's listening
// sockets (SO_REUSEPORT spreads connections over the workers) and the connections it
// accepted. Per connection it connects to a backend (round-robin, the next one on
// failure), waits for the ClientHello when AUTHORITY comes from SNI, writes the PROXY
// header, then hands the connection to a relay (tcp/relay.hpp) until it ends.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "loader/datapath.hpp"
#include "sys/fd.hpp"
#include "tcp/conn.hpp"
#include "tcp/log_limit.hpp"
#include "tcp/pipe_relay.hpp"
#include "tcp/relay.hpp"

namespace ppinject::tcp {

class Worker final : private RelayHost {
  public:
    // Connections use tcp_conns slots [slot_base, slot_base + slots). Throws
    // std::runtime_error when its epoll set cannot be made.
    Worker(const Datapath::TcpMaps &maps, LogFn log, std::uint32_t slot_base, std::uint32_t slots);
    // Stops the thread and closes every connection (not the listening sockets: the caller's).
    ~Worker();
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;

    // Runs `cmd` on the worker's thread, soon.
    void post(std::function<void(Worker &)> cmd);

    // Accepts on listening socket `fd` for `svc`. The caller owns the socket and keeps it
    // open until remove_listener(fd) has run on this worker.
    void add_listener(int fd, std::shared_ptr<const ServiceRt> svc);
    // New connections on `fd` get `svc` (a reload that kept the socket).
    void set_service(int fd, std::shared_ptr<const ServiceRt> svc);
    // Stops accepting on `fd`; connections accepted from it run on.
    void remove_listener(int fd);

  private:
    struct Listener {
        std::shared_ptr<const ServiceRt> svc;
        std::optional<Endpoint> local;  // bound to one address: every connection's own
        bool loopback = false;          // only loopback clients: see loopback_listener()
        // Out of descriptors or memory: not watched until then (see pause_listener()).
        std::optional<Clock::time_point> paused_until;
    };
    // A connection slot; its generation outlives the connections that use it.
    struct Slot {
        std::uint32_t gen = 0;
        std::optional<Conn> conn;
    };

    void run();
    void run_commands();
    void accept_from(int lfd, Listener &l);
    void pause_listener(int lfd, Listener &l);
    void resume_listeners(Clock::time_point now);
    void start_connect(Conn &c);
    void next_backend(Conn &c);
    void on_event(Conn &c, int side, std::uint32_t events);
    void on_connected(Conn &c);
    void peek_sni(Conn &c);
    void maybe_send_header(Conn &c);
    void send_header(Conn &c);
    void start_relay(Conn &c);
    // Ends `c` when `step` says so.
    void apply(Conn &c, const Step &step);
    void tick();
    // Ends `c`: its relay first (sockmap: out of the maps), then both sockets closed, with a
    // reset where `how` says; the slot is free for the next connection.
    void finish(Conn &c, Ending how);
    bool watch(const Conn &c, int side, std::uint32_t events, bool add);
    bool arm(const Conn &c, int side, std::uint32_t events) override {
        return watch(c, side, events, false);
    }
    void log(const std::string &line) override { log_(line); }
    RelayBuffer take_buffer() override;
    void give_buffer(RelayBuffer buf) override;
    RelayHost &host() { return *this; }
    void random_id(std::array<std::uint8_t, 16> &out);

    Datapath::TcpMaps maps_;
    LogLimiter log_;  // what repeats per connection is said once a second with a count
    std::uint32_t slot_base_, slots_;
    Fd ep_, wake_;
    std::mutex mu_;
    std::vector<std::function<void(Worker &)>> commands_;
    bool stopping_ = false;
    std::map<int, Listener> listeners_;  // by fd
    std::size_t paused_ = 0;             // listeners with paused_until set
    std::vector<Slot> conns_;
    std::vector<std::uint32_t> free_;
    // Connections with a deadline (connect, SNI wait), with the generation they had.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> watched_;
    std::size_t ticking_ = 0;  // connections whose relay ticks()
    Clock::time_point next_idle_scan_;
    PipePool pipes_;
    std::vector<RelayBuffer> buffers_;  // kept for the next reads, at most kKeptBuffers
    std::array<std::uint8_t, 4096> random_{};
    std::size_t random_left_ = 0;
    std::thread thread_;  // last: starts once everything above exists
};

}  // namespace ppinject::tcp
