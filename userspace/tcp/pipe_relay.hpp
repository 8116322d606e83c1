// The relay of `relay = "splice"` and `relay = "copy"`: per direction, bytes are read from
// one socket and written to the other, through a pipe with splice(2) (payload stays in the
// kernel), or through a buffer with recv/send (the baseline). A FIN is passed on as
// shutdown(SHUT_WR) once every byte before it is written; a reset as a reset.
//
// A direction holds its pipe or buffer only while bytes sit in it: it borrows one from its
// worker when it reads and gives it back once they are written, so an idle connection has
// its two sockets and nothing else (two descriptors, no buffer memory).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "sys/fd.hpp"
#include "tcp/relay.hpp"

namespace ppinject::tcp {

// Both ends of a pipe.
struct Pipe {
    Fd read, write;
};

// A worker's empty pipes, lent to the directions that have bytes to move (saving pipe2 and
// F_SETPIPE_SZ per read). At most kKept are kept; more are closed when given back.
class PipePool {
  public:
    static constexpr std::size_t kKept = 256;
    // An empty pipe, kept or new; 0 or -errno.
    int take(Pipe &out, RelayHost &host);
    // Back from a direction that emptied it.
    void give(Pipe p);

  private:
    std::vector<Pipe> free_;
    bool warned_ = false;  // that pipes could not be grown (said once)
};

class PipeRelay final : public Relay {
  public:
    enum class Through { pipe, buffer };  // splice(2) through a pipe, or copy through a buffer
    PipeRelay(RelayHost &host, PipePool &pool, Through through)
        : host_(host), pool_(pool), through_(through) {}
    ~PipeRelay() override;
    PipeRelay(const PipeRelay &) = delete;
    PipeRelay &operator=(const PipeRelay &) = delete;

    Step start(Conn &c) override;
    Step on_event(Conn &c, int side, std::uint32_t events) override;

  private:
    // One direction: bytes of side `from` on their way to the other.
    struct Pump {
        Pipe pipe;                          // Through::pipe
        RelayBuffer buf;                    // Through::buffer
        std::size_t pending = 0, head = 0;  // bytes held (buffer: buf[head, head + pending))
        bool eof = false;                   // the source sent FIN
        bool shut = false;                  // FIN passed on
    };
    int run_pump(Conn &c, int from, int &failed);
    int move_bytes(Pump &p, Conn &c, int from, int &failed);
    // The pipe or buffer of `p`, borrowed when it has none; 0 or -errno.
    int borrow(Pump &p);
    // Gives `p`'s pipe or buffer back when no bytes are left in it.
    void give_back(Pump &p);
    Step run_pumps(Conn &c);

    RelayHost &host_;
    PipePool &pool_;
    Through through_;
    Pump pump_[2];  // pump_[i]: from side i to the other
};

}  // namespace ppinject::tcp
