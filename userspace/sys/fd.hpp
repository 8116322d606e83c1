// The one owner of a file descriptor: sockets, pipes, epoll and eventfd descriptors, BPF
// map, program and link fds. Move-only; closes what it holds exactly once, when it is
// destroyed or given another descriptor. Rollback after a failure is these destructors
// running in reverse order of creation, so nothing holds a descriptor by hand.
#pragma once

#include <unistd.h>

#include <utility>

namespace ppinject {

class Fd {
  public:
    Fd() = default;
    // Takes ownership of `fd`; a negative value (a failed call's result) holds nothing.
    explicit Fd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
    ~Fd() { reset(); }
    Fd(Fd &&other) noexcept : fd_(other.release()) {}
    Fd &operator=(Fd &&other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;

    // The descriptor, still owned here; -1 when empty.
    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    // Gives the descriptor up without closing it (to an owner outside C++, such as
    // libbpf's bpf_map__reuse_fd, which dups it, or a caller of a C API).
    int release() noexcept { return std::exchange(fd_, -1); }

    // Closes what is held (its error is not an answer anyone can act on: the descriptor
    // is gone either way) and takes `fd`.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = fd < 0 ? -1 : fd;
    }

  private:
    int fd_ = -1;
};

}  // namespace ppinject
