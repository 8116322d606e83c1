// A relay moves a connection's bytes once its PROXY header is written, until the
// connection ends: PipeRelay (splice(2) through pipes, or copying) and SockmapRelay (an
// sk_skb verdict redirects them in the kernel). The worker owns the connection and its
// sockets; a relay says what should happen next and asks the worker only for what
// RelayHost offers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tcp/conn.hpp"

namespace ppinject::tcp {

// How a connection ends: closed both ways, the side `reset_side` was reset (the other side
// gets a reset too), and/or the client is reset.
struct Ending {
    bool reset_client = false;
    int reset_side = -1;  // kClient, kBackend, or -1 for none
};

// What a relay's step leaves: the connection goes on (nullopt) or ends.
using Step = std::optional<Ending>;

// Bytes a relay holds in userspace on their way (copy mode, sockmap's held bytes).
constexpr std::size_t kRelayBuffer = 64 * 1024;
using RelayBuffer = std::unique_ptr<std::uint8_t[]>;

// What a relay may ask of the worker that owns its connection.
class RelayHost {
  public:
    // A buffer of kRelayBuffer bytes, one the worker kept from an earlier connection or a
    // new one; give_buffer() hands it back for the next.
    virtual RelayBuffer take_buffer() = 0;
    virtual void give_buffer(RelayBuffer buf) = 0;
    // Sets the epoll interest of side `side`'s socket (edge-triggered where asked; 0: only
    // errors and hang-ups). False when epoll refused it (the reason is logged).
    virtual bool arm(const Conn &c, int side, std::uint32_t events) = 0;
    virtual void log(const std::string &line) = 0;

  protected:
    ~RelayHost() = default;
};

class Relay {
  public:
    virtual ~Relay() = default;
    // Moves what waits already; later, edges of the sockets' events bring on_event.
    virtual Step start(Conn &c) = 0;
    virtual Step on_event(Conn &c, int side, std::uint32_t events) = 0;
    // Relays that work on a timer as well as on events (ticks() true) get tick() every few
    // milliseconds.
    virtual bool ticks() const { return false; }
    virtual Step tick(Conn &) { return std::nullopt; }
    // Asked once a second: whether bytes moved that no event reported since the last ask,
    // so that the connection is not idle.
    virtual bool moved_unseen(Conn &) { return false; }
};

}  // namespace ppinject::tcp
