#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace pptest {
namespace {

// In a forked child of `parent`: becomes `argv`, or exits 127 when it cannot. It gets SIGTERM
// when the test process ends (the signal survives exec), so a test killed by a timeout
// leaves no daemon running: ppinject removes its pins and filters on SIGTERM.
[[noreturn]] void exec_or_exit(const std::vector<std::string> &argv, pid_t parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) {
        _exit(127);  // or the test is already gone
    }
    // An ignored signal stays ignored across exec: the child gets SIGPIPE back as a shell
    // would start it, or a daemon that forgot to ignore it would pass every test.
    signal(SIGPIPE, SIG_DFL);
    std::vector<char *> args;
    for (const auto &a : argv) {
        args.push_back(const_cast<char *>(a.c_str()));
    }
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
}

}  // namespace

std::string ppinject_binary() {
    return std::string(PPINJECT_BINARY_DIR) + "/ppinject";
}

ProcessResult run_process(const std::vector<std::string> &argv, const std::string &input,
                          std::chrono::milliseconds timeout) {
    // [0] read end, [1] write end of the child's stdin, stdout and stderr.
    ppinject::Fd in[2], out[2], err[2];
    for (ppinject::Fd *p : {in, out, err}) {
        int ends[2];
        if (pipe2(ends, O_CLOEXEC) != 0) {
            int e = -errno;
            throw std::runtime_error(ppinject::error_text("pipe", e));
        }
        p[0].reset(ends[0]);
        p[1].reset(ends[1]);
    }
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        throw std::runtime_error(ppinject::error_text("fork", e));
    }
    if (pid == 0) {
        dup2(in[0].get(), 0);
        dup2(out[1].get(), 1);
        dup2(err[1].get(), 2);
        exec_or_exit(argv, self);
    }
    in[0].reset();
    out[1].reset();
    err[1].reset();
    fcntl(in[1].get(), F_SETFL, O_NONBLOCK);

    ProcessResult r;
    size_t written = 0;
    if (input.empty()) {
        in[1].reset();
    }
    signal(SIGPIPE, SIG_IGN);  // a child that exits without reading stdin must not kill us
    auto deadline = std::chrono::steady_clock::now() + timeout;
    ppinject::Fd *readers[2] = {&out[0], &err[0]};
    std::string *sinks[2] = {&r.out, &r.err};
    while (out[0] || err[0]) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            r.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        // A negative fd in a pollfd is ignored by poll(), so closed pipes just drop out.
        pollfd fds[3] = {
            {out[0].get(), POLLIN, 0}, {err[0].get(), POLLIN, 0}, {in[1].get(), POLLOUT, 0}};
        if (poll(fds, 3, static_cast<int>(left.count())) < 0 && errno != EINTR) {
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                readers[i]->reset();
            }
        }
        if (in[1] && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in[1].get(), input.data() + written, input.size() - written);
            if (n > 0) {
                written += static_cast<size_t>(n);
            }
            if (n < 0 || written == input.size()) {
                in[1].reset();
            }
        }
    }
    for (ppinject::Fd *fd : {&in[1], &out[0], &err[0]}) {
        fd->reset();
    }
    int status = 0;
    waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

Child::Child(const std::vector<std::string> &argv) {
    std::string tmpl = "/tmp/ppt" + std::to_string(getpid()) + "-child-XXXXXX";
    ppinject::Fd log_fd(mkstemp(tmpl.data()));
    if (!log_fd) {
        int e = -errno;
        throw std::runtime_error(ppinject::error_text("mkstemp", e));
    }
    log_path_ = tmpl;
    pid_t self = getpid();
    pid_ = fork();
    if (pid_ < 0) {
        int e = -errno;
        throw std::runtime_error(ppinject::error_text("fork", e));
    }
    if (pid_ == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(log_fd.get(), 1);
        dup2(log_fd.get(), 2);
        exec_or_exit(argv, self);
    }
}

Child::~Child() {
    if (running()) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
    }
    unlink(log_path_.c_str());
}

bool Child::running() {
    if (status_ != -1) {
        return false;
    }
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = st;
        return false;
    }
    return true;
}

std::string Child::log() const {
    std::string out;
    ppinject::Fd fd(open(log_path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return out;
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(fd.get(), buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

bool Child::wait_for_output(const std::string &text, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (log().find(text) != std::string::npos) {
            return true;
        }
        if (const_cast<Child *>(this)->running() == false) {
            return log().find(text) != std::string::npos;
        }
        usleep(20 * 1000);
    }
    return false;
}

int Child::stop(int sig, std::chrono::milliseconds timeout) {
    if (running()) {
        kill(pid_, sig);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &status_, 0);
            return -1;
        }
        usleep(10 * 1000);
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

}  // namespace pptest
