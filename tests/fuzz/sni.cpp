// Fuzz target: find_sni. The answer must not depend on how the ClientHello arrives: an
// answer other than need_more for a prefix is the answer for the whole input, and a found
// name is a non-empty view inside the input.
#include <string_view>

#include "fuzz.hpp"
#include "tcp/sni.hpp"

namespace {

using ppinject::tcp::find_sni;
using ppinject::tcp::SniResult;

void check_name(const SniResult &r, ppfuzz::Bytes in) {
    if (r.kind != SniResult::found) {
        FUZZ_CHECK(r.name.empty());
        return;
    }
    auto *p = reinterpret_cast<const std::uint8_t *>(r.name.data());
    FUZZ_CHECK(!r.name.empty() && p >= in.data() && p + r.name.size() <= in.data() + in.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    ppfuzz::Bytes in(data, size);
    SniResult whole = find_sni(in);
    check_name(whole, in);
    for (std::size_t p : ppfuzz::prefix_lengths(size)) {
        std::vector<std::uint8_t> copy = ppfuzz::exact_copy(in.first(p));
        SniResult r = find_sni(copy);
        check_name(r, copy);
        if (r.kind != SniResult::need_more) {
            FUZZ_CHECK(r.kind == whole.kind && r.name == whole.name);
        }
    }
    return 0;
}
