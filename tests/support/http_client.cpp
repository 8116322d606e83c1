#include "support/http_client.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace pptest {

using ppinject::Endpoint;
using ppinject::Fd;
using Clock = std::chrono::steady_clock;

Fd connect_to(const Endpoint &at, std::chrono::milliseconds timeout) {
    sockaddr_storage ss{};
    socklen_t len = at.to_sockaddr(ss);
    Fd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        ADD_FAILURE() << "socket: " << std::strerror(errno);
        return Fd();
    }
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0) {
        ADD_FAILURE() << "connect " << at.to_string() << ": " << std::strerror(errno);
        return Fd();
    }
    return fd;
}

std::string read_all(int fd, bool *eof, std::chrono::milliseconds budget) {
    std::string out;
    char buf[65536];
    auto end = Clock::now() + budget;
    if (eof) {
        *eof = false;
    }
    while (Clock::now() < end) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 && eof) {
            *eof = true;
        }
        if (n <= 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

HttpResponse parse_response(const std::string &raw) {
    HttpResponse r;
    std::size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) {
        ADD_FAILURE() << "no complete response head in: " << raw;
        return r;
    }
    std::size_t pos = 0;
    for (bool first = true; pos < end; first = false) {
        std::size_t eol = raw.find("\r\n", pos);
        std::string line = raw.substr(pos, eol - pos);
        pos = eol + 2;
        if (first) {
            r.status_line = line;
            if (line.rfind("HTTP/1.1 ", 0) != 0 || line.size() < 12) {
                ADD_FAILURE() << "bad status line: " << line;
                return r;
            }
            r.status = std::stoi(line.substr(9, 3));
            continue;
        }
        std::size_t colon = line.find(':');
        if (colon == std::string::npos) {
            ADD_FAILURE() << "bad header line: " << line;
            continue;
        }
        std::string name = line.substr(0, colon);
        for (char &c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        EXPECT_EQ(r.headers.count(name), 0u) << "header twice: " << name;
        r.headers[name] = value;
    }
    r.body = raw.substr(end + 4);
    return r;
}

HttpResponse roundtrip(const Endpoint &at, const std::string &request) {
    Fd fd = connect_to(at);
    if (!fd) {
        return {};
    }
    EXPECT_EQ(send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    bool eof = false;
    std::string raw = read_all(fd.get(), &eof);
    fd.reset();
    EXPECT_TRUE(eof) << "the server must close after its response (Connection: close)";
    return parse_response(raw);
}

std::string get(const std::string &target, const std::string &method) {
    return method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n";
}

}  // namespace pptest
