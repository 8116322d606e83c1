#include "tcp/pipe_relay.hpp"

#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "sys/error.hpp"
#include "tcp/socket.hpp"

namespace ppinject::tcp {
namespace {

// Pipes larger than the default 64 KiB: fewer, larger moves (tools/bench/README.md).
constexpr std::size_t kPipeSize = 256 * 1024;

}  // namespace

int PipePool::take(Pipe &out, RelayHost &host) {
    if (!free_.empty()) {
        out = std::move(free_.back());
        free_.pop_back();
        return 0;
    }
    int ends[2];
    if (pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) {
        return -errno;
    }
    out.read.reset(ends[0]);
    out.write.reset(ends[1]);
    if (fcntl(out.write.get(), F_SETPIPE_SZ, static_cast<int>(kPipeSize)) < 0 && !warned_) {
        // Above fs.pipe-max-size without CAP_SYS_RESOURCE: the default size still works.
        host.log(
            error_text("tcp: grow relay pipes to 256 KiB (they keep the default size)", -errno));
        warned_ = true;
    }
    return 0;
}

void PipePool::give(Pipe p) {
    if (free_.size() < kKept) {
        free_.push_back(std::move(p));
    }
}

PipeRelay::~PipeRelay() {
    for (Pump &p : pump_) {
        give_back(p);  // bytes left in a pipe are not the next one's: it is closed
        if (p.buf) {
            host_.give_buffer(std::move(p.buf));  // a buffer's leftovers are overwritten
        }
    }
}

int PipeRelay::borrow(Pump &p) {
    if (through_ == Through::buffer) {
        if (!p.buf) {
            p.buf = host_.take_buffer();
        }
        return 0;
    }
    return p.pipe.read ? 0 : pool_.take(p.pipe, host_);
}

void PipeRelay::give_back(Pump &p) {
    if (p.pending > 0) {
        return;
    }
    if (p.buf) {
        host_.give_buffer(std::move(p.buf));
    }
    if (p.pipe.read) {
        pool_.give(std::move(p.pipe));
    }
}

Step PipeRelay::start(Conn &c) {
    Step end = run_pumps(c);  // what came before the relay started; edges bring the rest
    if (!end && c.corked) {   // nothing followed the header after all
        if (int err = set_option(c.fd[kBackend].get(), IPPROTO_TCP, TCP_NODELAY, 1); err != 0) {
            host_.log(error_text("tcp: push the header to the backend (TCP_NODELAY)", err));
        }
        c.corked = false;
    }
    return end;
}

Step PipeRelay::on_event(Conn &c, int, std::uint32_t) {
    c.last_active = Clock::now();  // an event on a relayed socket: not idle
    return run_pumps(c);
}

// Moves what it can from side `from` to the other. Returns 0, or an errno that ends the
// connection and sets `failed` to the side whose socket returned it (-1: neither, the
// relay had no pipe for the bytes).
int PipeRelay::run_pump(Conn &c, int from, int &failed) {
    Pump &p = pump_[from];
    int err = move_bytes(p, c, from, failed);
    give_back(p);
    return err;
}

int PipeRelay::move_bytes(Pump &p, Conn &c, int from, int &failed) {
    int src = c.fd[from].get(), dst = c.fd[1 - from].get();
    bool use_pipe = through_ == Through::pipe;
    for (;;) {
        if (p.pending > 0) {
            ssize_t n = use_pipe ? splice(p.pipe.read.get(), nullptr, dst, nullptr, p.pending,
                                          SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                 : send(dst, p.buf.get() + p.head, p.pending, MSG_NOSIGNAL);
            if (n < 0) {
                failed = 1 - from;
                return errno == EAGAIN ? 0 : errno == EINTR ? 0 : errno;
            }
            p.pending -= static_cast<std::size_t>(n);
            p.head += static_cast<std::size_t>(n);
            count_relayed(c, from, n);
            if (from == kClient) {
                c.corked = false;  // a write without MSG_MORE sent the header with it
            }
            continue;
        }
        if (p.eof) {
            if (from == kClient) {
                c.corked = false;  // the FIN pushes what is queued (shutdown or close)
            }
            if (!p.shut) {
                // The other way done as well: the worker closes both, and close() sends
                // this FIN (both receive queues are read to their FIN, so no reset).
                if (!pump_[1 - from].shut) {
                    shutdown(dst, SHUT_WR);
                }
                p.shut = true;
            }
            return 0;
        }
        if (int err = borrow(p); err != 0) {
            failed = -1;
            return -err;
        }
        p.head = 0;
        ssize_t n = use_pipe ? splice(src, nullptr, p.pipe.write.get(), nullptr, kPipeSize,
                                      SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                             : recv(src, p.buf.get(), kRelayBuffer, 0);
        if (n < 0) {
            failed = from;
            return errno == EAGAIN || errno == EINTR ? 0 : errno;
        }
        if (n == 0) {
            p.eof = true;
            continue;
        }
        p.pending = static_cast<std::size_t>(n);
    }
}

Step PipeRelay::run_pumps(Conn &c) {
    for (int s : {kClient, kBackend}) {
        int failed = -1;
        int err = run_pump(c, s, failed);
        if (err == 0) {
            continue;
        }
        if (failed < 0) {
            // Bytes wait and no pipe can take them (descriptors run out): both sides are
            // reset, so that neither takes the end for a complete stream.
            host_.log(error_text(
                "tcp: pipe for a relayed connection of service '" + c.svc->cfg.name + "'", -err));
            count(c, &pp_tcp_stats::tcp_relay_failed);
            return Ending{.reset_side = kClient};
        }
        // A reset of either socket is passed on as a reset; anything else closes both.
        // EPIPE is one too: nothing is written after our own shutdown, so the socket was
        // reset, and the reset was taken by an earlier splice that returned the bytes it
        // had moved before it.
        return Ending{.reset_side = is_reset(err) || err == EPIPE ? failed : -1};
    }
    if (pump_[kClient].shut && pump_[kBackend].shut) {
        return Ending{};
    }
    return std::nullopt;
}

}  // namespace ppinject::tcp
