// Fuzz target: V2Writer under random call sequences into buffers of random sizes. A model
// follows what each call's result says it did: every call refused for what it was asked
// (bad type, too long, not started) writes nothing, a buffer overflow is sticky until the
// next begin, and once finish() succeeds the output decodes to exactly what the model holds
// (addresses, every TLV and SSL sub-TLV in order, CRC32C last), at the length the model
// predicts. Lengths the model predicts also decide which overflows are right.
#include <algorithm>
#include <string_view>
#include <vector>

#include "codec_checks.hpp"

namespace {

using namespace ppfuzz;
using ppinject::Endpoint;
using ppinject::IpAddress;

// One TLV the writer was told to write; an SSL TLV holds its sub-TLVs.
struct ModelTlv {
    std::uint8_t type = 0;
    std::vector<std::uint8_t> value;  // the SSL TLV: client and verify (5 bytes)
    std::vector<ModelTlv> subs;
    std::size_t size() const {
        std::size_t n = 3 + value.size();
        for (const ModelTlv &s : subs) {
            n += s.size();
        }
        return n;
    }
};

struct Model {
    bool started = false;
    bool sticky = false;  // an overflow (or a too-long header) since the last begin
    bool ssl_open = false;
    Command command = Command::local;
    Family family = Family::unspec;
    Transport transport = Transport::unspec;
    Endpoint source, destination;
    std::string_view source_path, destination_path;
    std::vector<ModelTlv> tlvs;

    std::size_t size() const {
        std::size_t n = kV2FixedLen + address_block_len(family);
        for (const ModelTlv &t : tlvs) {
            n += t.size();
        }
        return n;
    }
    void begin(Error e, Command c, Family f, Transport t) {
        // Refused before anything is written: the previous state stands.
        if (e != Error::ok && e != Error::buffer_too_small) {
            return;
        }
        *this = Model{};
        started = true;
        sticky = e != Error::ok;
        command = c;
        family = f;
        transport = t;
    }
};

Endpoint endpoint(Choices &c) {
    std::uint16_t port = c.u16();
    if (c.u8() & 1) {
        return {IpAddress::v4({c.u8(), c.u8(), c.u8(), c.u8()}), port};
    }
    std::array<std::uint8_t, 16> b{};
    for (auto &v : b) {
        v = c.u8();
    }
    if (c.u8() & 1) {  // IPv4-mapped, which counts as IPv4
        std::fill(b.begin(), b.begin() + 10, 0);
        b[10] = b[11] = 0xFF;
    }
    return {IpAddress::v6(b), port};
}

// Fuzz bytes as a value; sometimes the empty view without storage (Bytes{}), which callers
// pass too and which must not reach memcpy as a null pointer.
Bytes value(Choices &c, std::size_t max) {
    Bytes b = c.bytes(max);
    return b.empty() && (c.u8() & 1) ? Bytes{} : b;
}

std::string_view text(Bytes b) {
    return b.data() ? std::string_view(reinterpret_cast<const char *>(b.data()), b.size())
                    : std::string_view{};
}

// An add-like call's result: `head_and_value` bytes were asked for.
void added(Model &m, Error e, std::size_t cap, std::uint8_t type, Bytes v,
           std::size_t head_and_value) {
    if (!m.started) {
        FUZZ_CHECK(e != Error::ok);  // not_started, or a refusal of the type or value first
        return;
    }
    if (m.sticky) {
        FUZZ_CHECK(e != Error::ok);
        return;
    }
    if (e == Error::buffer_too_small) {
        FUZZ_CHECK(m.size() + head_and_value > cap);
        m.sticky = true;
        return;
    }
    if (e != Error::ok) {
        return;  // refused for what it was asked: nothing written
    }
    FUZZ_CHECK(m.size() + head_and_value <= cap);
    ModelTlv t{type, {v.begin(), v.end()}, {}};
    if (m.ssl_open) {
        m.tlvs.back().subs.push_back(std::move(t));
    } else {
        m.tlvs.push_back(std::move(t));
    }
}

// The decoded header is the model's.
void check_output(const Model &m, Bytes out, bool crc) {
    std::vector<std::uint8_t> copy = exact_copy(out);
    V2Header h;
    Status s = decode_v2(Bytes(copy), h);
    FUZZ_CHECK(s.ok());
    FUZZ_CHECK(h.length == out.size() && h.command == m.command && h.family == m.family &&
               h.transport == m.transport && h.has_crc32c == crc);
    if (m.family == Family::inet || m.family == Family::inet6) {
        FUZZ_CHECK(h.source == m.source && h.destination == m.destination);
    }
    if (m.family == Family::unix_socket) {
        // A path is read up to its first NUL.
        auto upto_nul = [](std::string_view p) { return p.substr(0, p.find('\0')); };
        FUZZ_CHECK(h.source_path == upto_nul(m.source_path) &&
                   h.destination_path == upto_nul(m.destination_path));
    }
    TlvReader r(h.tlvs);
    for (const ModelTlv &want : m.tlvs) {
        Tlv t;
        FUZZ_CHECK(r.next(t) && t.type == want.type && 3 + t.value.size() == want.size());
        FUZZ_CHECK(same_bytes(t.value.first(want.value.size()), want.value));
        TlvReader sub(t.value.subspan(want.value.size()));  // an SSL TLV's sub-TLVs
        for (const ModelTlv &ws : want.subs) {
            Tlv st;
            FUZZ_CHECK(sub.next(st) && st.type == ws.type && same_bytes(st.value, ws.value));
        }
    }
    Tlv t;
    if (crc) {
        FUZZ_CHECK(r.next(t) && t.type == tlv::crc32c);
    }
    FUZZ_CHECK(!r.next(t) && !r.overrun());
    check_v2_views(h);
}

// finish(): refused while not started or inside an SSL TLV, fails after an overflow, and
// otherwise writes the model's header or says why the model's length does not fit.
void finish(Model &m, V2Writer &w, Bytes buf, bool crc) {
    std::size_t written = 0;
    Error e = w.finish(crc, written);
    std::size_t want = m.size() + (crc ? 7 : 0);
    if (!m.started || m.ssl_open) {
        FUZZ_CHECK(e == Error::not_started);
    } else if (m.sticky) {
        FUZZ_CHECK(e != Error::ok);
    } else if (e == Error::buffer_too_small) {
        FUZZ_CHECK(want > buf.size());
        m.sticky = true;
    } else if (e == Error::value_too_long) {
        FUZZ_CHECK(want > kV2MaxLen);
        m.sticky = true;
    } else {
        FUZZ_CHECK(e == Error::ok && written == want && want <= buf.size());
        check_output(m, buf.first(written), crc);
        m.started = false;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    Choices c(Bytes(data, size));
    // A buffer of exactly its size (overwrites are ASan reports) holding garbage.
    std::size_t cap = (c.u8() & 7) == 0 ? kV2MaxLen + 16 : c.u16() % 1024;
    std::vector<std::uint8_t> buf(cap, 0xA5);
    V2Writer w(buf);
    Model m;
    for (int op = 0; op < 64 && !c.empty(); op++) {
        auto command = static_cast<Command>(c.u8() & 1);
        auto transport = static_cast<Transport>(c.u8() % 3);
        std::uint8_t type = c.u8();
        switch (c.u8() % 12) {
            case 0: {
                Endpoint s = endpoint(c), d = endpoint(c);
                Error e = w.begin(command, transport, s, d);
                FUZZ_CHECK(transport != Transport::unspec || e == Error::v2_bad_family_transport);
                m.begin(e, command, family_for(s, d), transport);
                if (e == Error::ok) {
                    m.source = s;
                    m.destination = d;
                }
                break;
            }
            case 1:
                m.begin(w.begin_unspec(command), command, Family::unspec, Transport::unspec);
                break;
            case 2: {
                std::string_view s = text(value(c, 120)), d = text(value(c, 120));
                Error e = w.begin_unix(command, transport, s, d);
                bool too_long = s.size() > kV2UnixPathLen || d.size() > kV2UnixPathLen;
                FUZZ_CHECK(!too_long || e != Error::ok);
                m.begin(e, command, Family::unix_socket, transport);
                if (e == Error::ok) {
                    m.source_path = s;
                    m.destination_path = d;
                }
                break;
            }
            case 3: {
                Bytes v = value(c, 300);
                added(m, w.add(type, v), cap, type, v, 3 + v.size());
                break;
            }
            case 4: {
                Bytes v = value(c, 300);
                added(m, w.add_text(type, text(v)), cap, type, v, 3 + v.size());
                break;
            }
            case 5: {
                Bytes v = value(c, 64);
                std::uint8_t t = type % 3 == 0   ? tlv::alpn
                                 : type % 3 == 1 ? tlv::authority
                                                 : tlv::netns;
                Error e = t == tlv::alpn        ? w.add_alpn(text(v))
                          : t == tlv::authority ? w.add_authority(text(v))
                                                : w.add_netns(text(v));
                added(m, e, cap, t, v, 3 + v.size());
                break;
            }
            case 6: {
                Bytes v = value(c, 140);
                Error e = w.add_unique_id(v);
                FUZZ_CHECK(v.size() <= kUniqueIdMax || e == Error::v2_unique_id_too_long);
                added(m, e, cap, tlv::unique_id, v, 3 + v.size());
                break;
            }
            case 7: {
                Bytes v = value(c, 300);
                Error e = w.add_custom(type, v);
                FUZZ_CHECK((type >= tlv::custom_min && type <= tlv::custom_max) ||
                           e == Error::bad_tlv_type);
                added(m, e, cap, type, v, 3 + v.size());
                break;
            }
            case 8: {
                std::size_t len = (c.u8() & 3) == 0 ? c.u16() + (c.u8() % 3) : c.u8();
                Error e = w.add_noop(len);
                FUZZ_CHECK(len <= 0xFFFF || e != Error::ok);
                std::vector<std::uint8_t> zeros(e == Error::ok ? len : 0);
                added(m, e, cap, tlv::noop, zeros, 3 + len);
                break;
            }
            case 9: {
                std::uint8_t client = c.u8();
                std::uint32_t verify = c.u32();
                Error e = w.begin_ssl(client, verify);
                if (!m.started || m.ssl_open) {
                    FUZZ_CHECK(e == Error::not_started);
                    break;
                }
                std::uint8_t fixed[5] = {client, static_cast<std::uint8_t>(verify >> 24),
                                         static_cast<std::uint8_t>(verify >> 16),
                                         static_cast<std::uint8_t>(verify >> 8),
                                         static_cast<std::uint8_t>(verify)};
                added(m, e, cap, tlv::ssl, fixed, 8);
                m.ssl_open = e == Error::ok;
                break;
            }
            case 10: {
                Error e = w.end_ssl();
                if (m.sticky) {
                    FUZZ_CHECK(e != Error::ok);
                } else if (!m.ssl_open) {
                    FUZZ_CHECK(e == Error::not_started);
                } else if (e == Error::value_too_long) {
                    FUZZ_CHECK(m.tlvs.back().size() - 3 > 0xFFFF);
                    m.sticky = true;
                } else {
                    FUZZ_CHECK(e == Error::ok && m.tlvs.back().size() - 3 <= 0xFFFF);
                }
                m.ssl_open = false;
                break;
            }
            case 11:
                finish(m, w, buf, type & 1);
                break;
        }
    }
    if (m.started && !m.ssl_open && !m.sticky) {
        finish(m, w, buf, false);
    }
    return 0;
}
