#include "tcp/sni.hpp"

#include <algorithm>
#include <cstddef>
#include <optional>

namespace ppinject::tcp {
namespace {

// A reader over one field whose length was announced by the bytes before it, of which only
// a prefix may have arrived. A field that runs past the announced length is malformed
// (not_tls) whether or not its bytes are here yet; one that fits but runs past what arrived
// waits for more. Every answer therefore depends on the bytes only, never on how they were
// split into segments: a prefix answers need_more or what the whole answers.
class Field {
  public:
    Field() = default;
    Field(std::span<const std::uint8_t> arrived, std::size_t announced)
        : b_(arrived.first(std::min(arrived.size(), announced))), announced_(announced) {}

    std::size_t left() const { return announced_ - pos_; }

    // Why `n` more bytes cannot be read now (not_tls or need_more), or nullopt when they can.
    std::optional<SniResult::Kind> need(std::size_t n) const {
        if (n > left()) {
            return SniResult::not_tls;
        }
        if (n > (pos_ < b_.size() ? b_.size() - pos_ : 0)) {
            return SniResult::need_more;
        }
        return std::nullopt;
    }
    // Why the rest of the field cannot be read now, or nullopt when all of it arrived.
    std::optional<SniResult::Kind> rest() const { return need(left()); }
    std::uint32_t u(std::size_t n) {  // big-endian, n <= 3; caller checked need(n)
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < n; i++) {
            v = v << 8 | b_[pos_++];
        }
        return v;
    }
    // The next `n` announced bytes as a field of their own (those of them that arrived).
    Field sub(std::size_t n) {
        Field f(b_.subspan(std::min(pos_, b_.size())), n);
        pos_ += n;
        return f;
    }
    std::span<const std::uint8_t> bytes() const { return b_; }

  private:
    std::span<const std::uint8_t> b_;
    std::size_t announced_ = 0;
    std::size_t pos_ = 0;
};

constexpr std::uint8_t kHandshakeRecord = 0x16;
constexpr std::uint8_t kClientHello = 0x01;
constexpr std::uint32_t kServerNameExtension = 0x0000;
constexpr std::uint8_t kHostName = 0x00;
// RFC 8446 section 5.1: a record's length must not exceed 2^14.
constexpr std::size_t kMaxRecord = 1 << 14;

SniResult answer(SniResult::Kind k) {
    return {k, {}};
}

// Reads a length of `len_bytes` and then that many bytes as a field.
std::optional<SniResult::Kind> vector_field(Field &in, std::size_t len_bytes, Field &out) {
    if (auto why = in.need(len_bytes)) {
        return why;
    }
    std::size_t n = in.u(len_bytes);
    if (n > in.left()) {
        return SniResult::not_tls;
    }
    out = in.sub(n);
    return std::nullopt;
}

// The server_name extension's body (RFC 6066 section 3): the first host_name entry. The
// whole extension must have arrived, so that the name is complete.
SniResult host_name(Field ext) {
    if (auto why = ext.rest()) {
        return answer(*why);
    }
    Field list;
    if (auto why = vector_field(ext, 2, list)) {
        return answer(*why);
    }
    while (list.left() > 0) {
        if (auto why = list.need(1)) {
            return answer(*why);
        }
        std::uint32_t type = list.u(1);
        Field name;
        if (auto why = vector_field(list, 2, name)) {
            return answer(*why);
        }
        if (type == kHostName && name.left() > 0) {
            auto b = name.bytes();
            return {SniResult::found, {reinterpret_cast<const char *>(b.data()), b.size()}};
        }
    }
    return answer(SniResult::no_sni);
}

}  // namespace

SniResult find_sni(std::span<const std::uint8_t> in) {
    // TLS record header: content type, legacy version, length. Its fields are checked one
    // by one as they arrive: a first byte that is not a handshake is not TLS right away.
    Field rec(in, 5);
    if (auto why = rec.need(1)) {
        return answer(*why);
    }
    if (rec.u(1) != kHandshakeRecord) {
        return answer(SniResult::not_tls);
    }
    if (auto why = rec.need(1)) {
        return answer(*why);
    }
    if (rec.u(1) != 0x03) {  // major version of every TLS and SSL 3.0 record
        return answer(SniResult::not_tls);
    }
    if (auto why = rec.need(3)) {
        return answer(*why);
    }
    rec.u(1);
    std::size_t record_len = rec.u(2);
    if (record_len < 4 || record_len > kMaxRecord) {
        return answer(SniResult::not_tls);
    }
    // The ClientHello is read from the first record only; a hello split over records is
    // rare and is then not read (not_tls, so the service's default applies).
    Field body(in.subspan(5), record_len);
    if (auto why = body.need(4)) {
        return answer(*why);
    }
    if (body.u(1) != kClientHello) {
        return answer(SniResult::not_tls);
    }
    std::size_t hello_len = body.u(3);
    if (hello_len > body.left()) {
        return answer(SniResult::not_tls);
    }
    // The hello's fields are read within its own length: bytes of the record after it are
    // not the hello's, and a server_name there is not the client's name.
    Field hello = body.sub(hello_len);
    // legacy_version and random, then session id, cipher suites, compression methods.
    if (auto why = hello.need(2 + 32)) {
        return answer(*why);
    }
    hello.sub(2 + 32);
    for (std::size_t len_bytes : {1, 2, 1}) {
        Field skipped;
        if (auto why = vector_field(hello, len_bytes, skipped)) {
            return answer(*why);
        }
        if (auto why = skipped.rest()) {  // what follows is read only once this arrived
            return answer(*why);
        }
    }
    if (hello.left() == 0) {
        return answer(SniResult::no_sni);  // a hello without extensions
    }
    Field exts;
    if (auto why = vector_field(hello, 2, exts)) {
        return answer(*why);
    }
    while (exts.left() > 0) {
        if (auto why = exts.need(4)) {
            return answer(*why);
        }
        std::uint32_t type = exts.u(2);
        std::size_t len = exts.u(2);
        if (len > exts.left()) {
            return answer(SniResult::not_tls);
        }
        Field ext = exts.sub(len);
        if (type == kServerNameExtension) {
            return host_name(ext);
        }
        // Skipped, but it must have arrived: no_sni is an answer about the whole block.
        if (auto why = ext.rest()) {
            return answer(*why);
        }
    }
    return answer(SniResult::no_sni);
}

}  // namespace ppinject::tcp
