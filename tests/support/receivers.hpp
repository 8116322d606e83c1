// Real third-party PROXY protocol receivers for namespace tests: private nginx (stream
// module, `listen ... proxy_protocol`) and HAProxy (`bind ... accept-proxy`) instances
// inside a test's network namespace, each in front of its own echo server, each logging
// per connection the client address it decoded. Tests check what ppinject writes against
// decoders nobody here wrote.
//
// Every instance has a generated config in a private temp dir (pid file, logs), on top of
// what every nginx and HAProxy of the project shares (tools/peers/, which the bench's proxies
// use too), runs in the foreground as one process (nginx `master_process off`, HAProxy
// `-db`), never reads the system config, writes nothing outside its dir, and is stopped by
// its PID in the destructor, also when the test failed; the dir is removed then.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "codec/address.hpp"
#include "support/netns.hpp"
#include "support/process.hpp"
#include "sys/fd.hpp"

namespace pptest {

// One connection as a receiver logged it when the connection ended.
struct Seen {
    // The client address and port the receiver reports: the header's source when a PROXY
    // header with addresses was accepted. nginx: unset for a v2 LOCAL header or a rejected
    // connection. HAProxy: the socket's own peer for LOCAL (it falls back to it).
    std::optional<ppinject::Endpoint> client;
    // The destination from the header (nginx $proxy_protocol_server_addr/_port, HAProxy
    // %fi:%fp, which is the socket's local address when the header had none).
    std::optional<ppinject::Endpoint> destination;
    // The socket's real peer (nginx $remote_addr/$remote_port); HAProxy 2.6 has no log
    // field for it once accept-proxy replaced the source, so it stays unset there.
    std::optional<ppinject::Endpoint> peer;
    // nginx $status ("200"; "400" for a broken header; "502" when the echo server was
    // unreachable); HAProxy %ts termination state ("--" for a normal close).
    std::string status;
    std::string line;  // the whole log line, for failure messages
};

// A TCP echo server inside a namespace, served by a thread of the test process (no extra
// process to stop): every byte read is written back; after the peer's FIN and once all is
// written back it sends its own FIN (half-close works). A connection with 1 MiB not yet
// written back is not read until the peer reads, so memory stays bounded.
class EchoServer {
  public:
    // Listens on `bind` inside `ns`; port 0 picks a free port (see endpoint()).
    EchoServer(const Netns &ns, const ppinject::Endpoint &bind);
    ~EchoServer();
    EchoServer(const EchoServer &) = delete;
    EchoServer &operator=(const EchoServer &) = delete;

    const ppinject::Endpoint &endpoint() const { return endpoint_; }
    // Connections accepted so far: a receiver that rejected a connection forwards none.
    std::size_t accepted() const { return accepted_.load(); }

  private:
    void serve();
    ppinject::Fd listen_fd_;
    ppinject::Fd wake_fd_;  // eventfd: the destructor wakes the thread to stop it
    ppinject::Endpoint endpoint_;
    std::atomic<std::size_t> accepted_{0};
    std::thread thread_;
};

// What both receivers share: the temp dir, the process, the echo backend, the wait for
// the listening sockets and for log entries.
// A receiver keeps a reference to its namespace: destroy it first.
class Receiver {
  public:
    // Stops the process by its PID (SIGTERM, SIGKILL after 5 s), then the echo server,
    // then removes the temp dir.
    virtual ~Receiver();
    Receiver(const Receiver &) = delete;
    Receiver &operator=(const Receiver &) = delete;

    // "nginx" or "haproxy".
    const std::string &kind() const { return kind_; }
    int pid() const { return child_ ? child_->pid() : -1; }
    const std::string &dir() const { return dir_; }
    const std::vector<ppinject::Endpoint> &listen() const { return listen_; }
    // Where the receiver forwards the payload (an echo server in its namespace).
    const EchoServer &echo() const { return *echo_; }

    // Waits until a socket of the process listens on every endpoint of listen() (read from
    // /proc/PID/net/tcp{,6}, so no probe connection pollutes the log). Throws
    // std::runtime_error with diagnostics() when the time runs out or the process exits.
    // The constructors of the receivers already call it.
    void wait_listening(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    // The per-connection entries logged so far, in log order.
    std::vector<Seen> seen() const;
    // Waits until at least `n` entries are logged and returns them all; at the deadline
    // returns what there is (the caller asserts the count). Entries are written when a
    // connection ends, so close the connection first.
    std::vector<Seen> wait_seen(std::size_t n,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    // The receiver's own messages: nginx's error log, HAProxy's stdout/stderr (which also
    // carries its errors, such as a missing PROXY header, in its fixed error format).
    virtual std::string messages() const = 0;
    // Waits until messages() contains `text`.
    bool wait_message(const std::string &text,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    // Config, messages and access log in one text for failure messages.
    std::string diagnostics() const;

  protected:
    Receiver(std::string kind, const Netns &ns, std::vector<ppinject::Endpoint> listen);
    // Writes `config` to dir()/`config_name`, then runs `argv` inside the namespace.
    void start(const std::string &config_name, const std::string &config,
               std::vector<std::string> argv);
    // The text that holds the "ppt-seen" lines.
    virtual std::string access_log() const = 0;
    // What the process printed on stdout and stderr (empty before start()).
    std::string output() const { return child_ ? child_->log() : std::string(); }

  private:
    std::string kind_;
    const Netns &ns_;
    std::vector<ppinject::Endpoint> listen_;
    std::string dir_;
    std::string config_;
    std::unique_ptr<EchoServer> echo_;
    std::unique_ptr<Child> child_;
};

// nginx `stream {}` with one server: `listen ADDR:PORT proxy_protocol;` for every endpoint,
// proxy_pass to the echo server with proxy_half_close on. The access log has
// $proxy_protocol_addr/_port, $proxy_protocol_server_addr/_port, $remote_addr/_port and
// $status per session.
class NginxStream : public Receiver {
  public:
    // Starts nginx inside `ns` and waits until it listens; throws std::runtime_error with
    // the diagnostics when it does not (for example when the stream module is missing).
    NginxStream(const Netns &ns, std::vector<ppinject::Endpoint> listen);
    // "nginx/1.22.1": what `nginx -v` reports.
    static std::string version();
    std::string messages() const override;

  protected:
    std::string access_log() const override;
};

// HAProxy `frontend` in `mode tcp` with `bind ADDR:PORT accept-proxy` for every endpoint and
// the echo server as its only backend server. Logs go to stdout (`log stdout format raw`),
// which the Child captures: %ci:%cp, %fi:%fp, %ts and the TLS version (%sslv) per connection.
// With `tls`, each bind also terminates TLS 1.3 only (`ssl crt`, a self-signed certificate
// for edge.example.com made in its dir with the openssl tool): the echo sees plain bytes.
class Haproxy : public Receiver {
  public:
    // Starts haproxy -db inside `ns` and waits until it listens; throws
    // std::runtime_error with the diagnostics when it does not.
    Haproxy(const Netns &ns, std::vector<ppinject::Endpoint> listen, bool tls = false);
    // "2.6.12-1+deb12u4": what `haproxy -v` reports.
    static std::string version();
    std::string messages() const override;

  protected:
    std::string access_log() const override;
};

// What a TCP client got back from one connection.
struct TcpExchange {
    std::string received;      // every byte read until EOF, reset or the deadline
    bool eof = false;          // the peer closed its side (FIN)
    bool reset = false;        // ECONNRESET (a receiver that closes with unread bytes resets)
    bool timed_out = false;    // the deadline passed first
    int error = 0;             // any other errno (connect refused, ...)
    ppinject::Endpoint local;  // the client socket's own address, as the receiver sees it
};

// Connects from inside `ns` to `to`, writes `send` (header and payload, interleaved with
// reading so large transfers cannot deadlock), half-closes its write side once all is
// written, and reads until EOF; everything within `timeout`.
TcpExchange tcp_exchange(const Netns &ns, const ppinject::Endpoint &to, const std::string &send,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace pptest
