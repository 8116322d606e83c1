// The TCP acceptor: a service's listening sockets, one per worker thread for each address
// it binds (tcp/worker.hpp accepts on them and hands each connection to a relay), and
// their reload. Per connection a backend is connected (round-robin, the next one on
// failure), the PROXY header written, then the payload relayed: with splice(2) through a
// pipe (default) or by copying (tcp/pipe_relay.hpp), or in the kernel with a sockmap
// (tcp/sockmap_relay.hpp). FIN becomes shutdown(SHUT_WR) on the other side, a reset
// becomes a reset.
#pragma once

#include <memory>
#include <vector>

#include "config/config.hpp"
#include "loader/datapath.hpp"

namespace ppinject::tcp {

class Worker;
class HealthChecker;

class Server {
  public:
    // Starts `workers` threads (0: one per CPU) serving the TCP services of `cfg`. Throws
    // std::runtime_error naming what failed (a listen address in use, ...); then nothing is
    // left listening.
    Server(const Config &cfg, const Datapath::TcpMaps &maps, LogFn log, unsigned workers = 0);
    // Stops accepting and closes every connection.
    ~Server();
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    // Serves `cfg` from now on: services whose listening set is unchanged keep their
    // sockets and established connections; new connections use the new settings
    // (backends, header, TLVs). Removed services stop accepting; their established
    // connections run on until they end. Throws if a new listener cannot be opened;
    // then nothing changed.
    void apply(const Config &cfg);

  private:
    class ListenSlot;
    struct Listening;
    // Opens the listening sockets of `svc` (closed again if one fails). Throws.
    std::unique_ptr<Listening> open_service(const Service &svc);
    void stop_serving(Listening &l);

    Datapath::TcpMaps maps_;
    LogFn log_;
    std::unique_ptr<HealthChecker> health_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::unique_ptr<Listening>> services_;
};

}  // namespace ppinject::tcp
