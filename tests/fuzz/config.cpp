// Fuzz target: the config loader on arbitrary text. Every input is a valid configuration
// (which `check` then describes, as text and JSON) or a ConfigError of one line,
// "fuzz.toml:LINE: reason" with LINE inside the text; anything else (another exception, a
// crash) is a finding.
#include <algorithm>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "config/describe.hpp"
#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    const std::string file = "fuzz.toml";
    try {
        ppinject::Config cfg = ppinject::parse_config(text, file);
        FUZZ_CHECK(!ppinject::describe(cfg).empty());
        FUZZ_CHECK(!ppinject::to_json(cfg).dump().empty());
    } catch (const ppinject::ConfigError &e) {
        std::string_view what = e.what();
        auto lines = static_cast<unsigned>(std::count(text.begin(), text.end(), '\n')) + 1;
        FUZZ_CHECK(e.file() == file && e.line() >= 1 && e.line() <= lines);
        FUZZ_CHECK(what.starts_with(file + ":" + std::to_string(e.line()) + ": "));
        FUZZ_CHECK(what.find_first_of("\r\n") == std::string_view::npos);
    }
    return 0;
}
