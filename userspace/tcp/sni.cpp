#include "tcp/sni.hpp"

#include <algorithm>
#include <cstddef>

namespace ppinject::tcp {
namespace {

// A bounds-checked reader over one byte span.
class Reader {
  public:
    explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}
    bool has(std::size_t n) const { return b_.size() - pos_ >= n; }
    std::size_t left() const { return b_.size() - pos_; }
    std::uint32_t u(std::size_t n) {  // big-endian, n <= 3; caller checked has(n)
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < n; i++) {
            v = v << 8 | b_[pos_++];
        }
        return v;
    }
    void skip(std::size_t n) { pos_ += n; }
    std::span<const std::uint8_t> take(std::size_t n) {
        auto s = b_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

  private:
    std::span<const std::uint8_t> b_;
    std::size_t pos_ = 0;
};

constexpr std::uint8_t kHandshakeRecord = 0x16;
constexpr std::uint8_t kClientHello = 0x01;
constexpr std::uint32_t kServerNameExtension = 0x0000;
constexpr std::uint8_t kHostName = 0x00;

// The server_name extension's body.
SniResult host_name(Reader ext) {
    if (!ext.has(2)) {
        return {SniResult::not_tls, {}};
    }
    std::size_t list_len = ext.u(2);
    if (!ext.has(list_len)) {
        return {SniResult::not_tls, {}};
    }
    Reader list(ext.take(list_len));
    while (list.has(3)) {
        std::uint32_t type = list.u(1);
        std::size_t len = list.u(2);
        if (!list.has(len)) {
            return {SniResult::not_tls, {}};
        }
        auto name = list.take(len);
        if (type == kHostName && len > 0) {
            return {SniResult::found, {reinterpret_cast<const char *>(name.data()), name.size()}};
        }
    }
    return {SniResult::no_sni, {}};
}

}  // namespace

SniResult find_sni(std::span<const std::uint8_t> in) {
    Reader rec(in);
    // TLS record header: content type, legacy version, length.
    if (!rec.has(1)) {
        return {SniResult::need_more, {}};
    }
    if (rec.u(1) != kHandshakeRecord) {
        return {SniResult::not_tls, {}};
    }
    if (!rec.has(4)) {
        return {SniResult::need_more, {}};
    }
    if (rec.u(1) != 0x03) {  // major version of every TLS and SSL 3.0 record
        return {SniResult::not_tls, {}};
    }
    rec.skip(1);
    std::size_t record_len = rec.u(2);
    if (record_len < 4) {
        return {SniResult::not_tls, {}};
    }
    // The ClientHello is read from the first record only; a hello split over records is
    // rare and then carries no name here.
    Reader body(rec.take(std::min(record_len, rec.left())));
    // Whether the bytes read from here on are all there: the record's, then the hello's.
    // Until they are, a field that runs past the input is a hello still arriving.
    bool whole = record_len <= in.size() - 5;
    auto more_or = [&](SniResult::Kind k) {
        return SniResult{whole ? k : SniResult::need_more, {}};
    };
    if (!body.has(4)) {
        return more_or(SniResult::not_tls);
    }
    if (body.u(1) != kClientHello) {
        return {SniResult::not_tls, {}};
    }
    std::size_t hello_len = body.u(3);
    if (hello_len > record_len - 4) {
        return {SniResult::not_tls, {}};
    }
    // The hello's fields are read within its own length: bytes of the record after it are
    // not the hello's, and a server_name there is not the client's name.
    whole = body.has(hello_len);
    Reader hs(body.take(std::min(hello_len, body.left())));
    // legacy_version, random, session id, cipher suites, compression methods, extensions.
    if (!hs.has(2 + 32 + 1)) {
        return more_or(SniResult::not_tls);
    }
    hs.skip(2 + 32);
    for (std::size_t len_bytes : {1, 2, 1}) {
        if (!hs.has(len_bytes)) {
            return more_or(SniResult::not_tls);
        }
        std::size_t n = hs.u(len_bytes);
        if (!hs.has(n)) {
            return more_or(SniResult::not_tls);
        }
        hs.skip(n);
    }
    if (!hs.has(2)) {
        return more_or(SniResult::no_sni);  // a hello without extensions
    }
    std::size_t ext_len = hs.u(2);
    if (!hs.has(ext_len) && whole) {
        return {SniResult::not_tls, {}};
    }
    Reader exts(hs.take(std::min(ext_len, hs.left())));
    while (exts.has(4)) {
        std::uint32_t type = exts.u(2);
        std::size_t len = exts.u(2);
        if (!exts.has(len)) {
            return more_or(SniResult::not_tls);
        }
        Reader body(exts.take(len));
        if (type == kServerNameExtension) {
            return host_name(body);
        }
    }
    return more_or(SniResult::no_sni);
}

}  // namespace ppinject::tcp
