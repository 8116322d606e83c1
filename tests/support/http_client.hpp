// A minimal HTTP/1.1 client for tests of the metrics server (/metrics, /healthz): one
// request per connection, the response read to EOF, every wait bounded.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "codec/address.hpp"
#include "sys/fd.hpp"

namespace pptest {

// A blocking client socket, connected to `at` in the calling thread's network namespace,
// whose reads and writes give up after `timeout`. A failure is a test failure (and an
// empty Fd).
ppinject::Fd connect_to(const ppinject::Endpoint &at,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Everything until EOF; `eof` says whether EOF came (rather than an error or the timeout).
std::string read_all(int fd, bool *eof = nullptr,
                     std::chrono::milliseconds budget = std::chrono::seconds(5));

struct HttpResponse {
    std::string status_line;
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
};

// Parses a whole response; a malformed one is a test failure.
HttpResponse parse_response(const std::string &raw);

// Sends `request` on a new connection and reads the response to EOF (the server must close
// after it: Connection: close).
HttpResponse roundtrip(const ppinject::Endpoint &at, const std::string &request);

// "METHOD TARGET HTTP/1.1" with a Host header.
std::string get(const std::string &target, const std::string &method = "GET");

}  // namespace pptest
