#include "config/toml_reader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <sstream>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace ppinject {
namespace {

// Larger files are refused: a configuration is a few kilobytes, /dev/zero is not one.
constexpr std::size_t kMaxFileSize = 4 << 20;

// toml11's syntax errors are several lines: "[error] toml::parse_x: what", then the source
// with "^--- note" under the spot (twice for a duplicate: both places). One line out of it.
std::string syntax_reason(const std::string &message, unsigned error_line) {
    std::istringstream in(message);
    std::string first, line;
    std::getline(in, first);
    if (first.rfind("[error] ", 0) == 0) {
        first = first.substr(8);
    }
    if (auto colon = first.find(": ");
        first.rfind("toml::", 0) == 0 && colon != std::string::npos) {
        first = first.substr(colon + 2);
    }
    while (!first.empty() && (first.back() == '.' || first.back() == ' ')) {
        first.pop_back();
    }
    // " 12 | source" followed by "    |   ^--- note" (or "~~~ note").
    std::vector<std::pair<unsigned, std::string>> notes;
    unsigned source_line = 0;
    while (std::getline(in, line)) {
        auto bar = line.find(" | ");
        if (bar == std::string::npos) {
            continue;
        }
        std::string left = line.substr(0, bar);
        left.erase(0, left.find_first_not_of(' '));
        if (!left.empty() && std::all_of(left.begin(), left.end(), ::isdigit)) {
            source_line = static_cast<unsigned>(std::stoul(left));
            continue;
        }
        std::string right = line.substr(bar + 3);
        auto mark = right.find_first_not_of(' ');
        if (mark == std::string::npos || (right[mark] != '^' && right[mark] != '~')) {
            continue;
        }
        auto text = right.find_first_not_of("^-~ ", mark);
        if (text == std::string::npos) {
            continue;
        }
        std::string note = right.substr(text);
        while (!note.empty() && (note.back() == '.' || note.back() == ' ')) {
            note.pop_back();
        }
        if (!note.empty() && note != "here") {
            notes.emplace_back(source_line, note);
        }
    }
    std::string reason = "TOML syntax: " + first;
    for (const auto &[at, note] : notes) {
        if (at == error_line && first.find(note) == std::string::npos) {
            reason += ": " + note;
            break;
        }
    }
    for (const auto &[at, note] : notes) {
        if (at != error_line && at != 0) {
            reason += " (line " + std::to_string(at) + ": " + note + ")";
            break;
        }
    }
    return reason;
}

}  // namespace

std::string read_config_file(const std::string &path) {
    auto cannot = [&](int err) { return ConfigError(path, 0, error_text("cannot read", err)); };
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        throw cannot(errno);
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw cannot(errno);
        }
        if (n == 0) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > kMaxFileSize) {
            throw ConfigError(path, 0,
                              "cannot read: larger than " + std::to_string(kMaxFileSize >> 20) +
                                  " MiB, not a configuration file");
        }
    }
    return text;
}

toml_value parse_toml(std::string_view text, const std::string &display_path) {
    std::istringstream in{std::string(text)};
    try {
        return toml::parse<toml::discard_comments>(in, display_path);
    } catch (const toml::exception &e) {
        auto line = static_cast<unsigned>(e.location().line());
        throw ConfigError(display_path, line ? line : 1, syntax_reason(e.what(), line));
    }
}

}  // namespace ppinject
