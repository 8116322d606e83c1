// What every fuzz target shares: the entry point libFuzzer calls (and replay_main.cpp calls
// on files), a check that aborts with its location and text, exact-size copies of inputs
// so a read past one is an AddressSanitizer report, the prefix lengths a property is
// checked at, and a reader that turns fuzz bytes into choices.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace ppfuzz {

using Bytes = std::span<const std::uint8_t>;

[[noreturn]] inline void fail(const char *file, int line, const char *what) {
    std::fprintf(stderr, "%s:%d: property violated: %s\n", file, line, what);
    std::abort();
}

}  // namespace ppfuzz

// A property of the code under test; a violation is a finding (abort, so libFuzzer saves
// the input and the replay test fails).
#define FUZZ_CHECK(cond)                               \
    do {                                               \
        if (!(cond)) {                                 \
            ::ppfuzz::fail(__FILE__, __LINE__, #cond); \
        }                                              \
    } while (0)

namespace ppfuzz {

// `in` in a heap block of exactly its size: one byte past it is outside the block.
inline std::vector<std::uint8_t> exact_copy(Bytes in) {
    return {in.begin(), in.end()};
}

// The prefix lengths (< in.size()) a prefix property is checked at: every one up to 256,
// then 64 spread evenly, and `extra` (a header's end and its neighbours, say) when in range.
// Every prefix of a large input would make each run quadratic; these keep it linear.
inline std::vector<std::size_t> prefix_lengths(std::size_t size,
                                               std::initializer_list<std::size_t> extra = {}) {
    std::vector<std::size_t> out;
    for (std::size_t p = 0; p < size && p <= 256; p++) {
        out.push_back(p);
    }
    if (size > 256) {
        for (std::size_t i = 1; i < 64; i++) {
            out.push_back(256 + (size - 256) * i / 64);
        }
    }
    for (std::size_t p : extra) {
        if (p < size) {
            out.push_back(p);
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

// Fuzz bytes read as a sequence of choices; past the end every read is zero (and empty).
class Choices {
  public:
    explicit Choices(Bytes in) : in_(in) {}
    bool empty() const { return pos_ >= in_.size(); }
    std::uint8_t u8() { return empty() ? 0 : in_[pos_++]; }
    std::uint16_t u16() { return static_cast<std::uint16_t>(u8() << 8 | u8()); }
    std::uint32_t u32() { return std::uint32_t{u16()} << 16 | u16(); }
    // Up to `max` bytes, the count read first (a view into the input).
    Bytes bytes(std::size_t max) {
        std::size_t n =
            std::min<std::size_t>(u16() % (max + 1), in_.size() - std::min(pos_, in_.size()));
        Bytes b = in_.subspan(std::min(pos_, in_.size()), n);
        pos_ += n;
        return b;
    }

  private:
    Bytes in_;
    std::size_t pos_ = 0;
};

}  // namespace ppfuzz
