#include "config/toml_reader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cerrno>
#include <sstream>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "config/config.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace ppinject {
namespace {

// Larger files are refused: a configuration of 255 services is a few hundred kilobytes,
// /dev/zero is not one.
constexpr std::size_t kMaxFileSize = 1 << 20;
// toml11 parses an array or inline table by recursion, one level per bracket (4,000 of them
// overflow the stack) and makes a table per part of a dotted key. A configuration needs three.
constexpr unsigned kMaxNesting = 32;
// toml11 copies or scans the whole line for every key and value on it: 20,000 on one line
// took seconds. A line of a configuration holds a few.
constexpr unsigned kMaxItemsPerLine = 256;

// The length of the UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF), or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) {
    auto at = [&](std::size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u; };
    unsigned lead = at(0);
    if (lead < 0x80) {
        return 1;
    }
    std::size_t n = 0;
    unsigned lo = 0x80, hi = 0xbf;  // range of the second byte; the others are 0x80..0xbf
    if (lead >= 0xc2 && lead <= 0xdf) {
        n = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        n = 3;
        lo = lead == 0xe0 ? 0xa0 : lo;  // overlong below U+0800
        hi = lead == 0xed ? 0x9f : hi;  // U+D800..U+DFFF are surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        n = 4;
        lo = lead == 0xf0 ? 0x90 : lo;  // overlong below U+10000
        hi = lead == 0xf4 ? 0x8f : hi;  // past U+10FFFF
    } else {
        return 0;
    }
    for (std::size_t i = 1; i < n; i++) {
        unsigned b = at(i);
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf)) {
            return 0;
        }
    }
    return n;
}

void check_utf8(std::string_view text, const std::string &path) {
    unsigned line = 1;
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < text.size();) {
        std::size_t n = utf8_sequence(text.substr(i));
        if (n == 0) {
            throw ConfigError(path, line,
                              fmt::format("not valid UTF-8 (byte 0x{:02x} at column {})",
                                          static_cast<unsigned char>(text[i]), i - line_start + 1));
        }
        if (text[i] == '\n') {
            line++;
            line_start = i + 1;
        }
        i += n;
    }
}

// Brackets, dots and separators are counted outside strings and comments only, so the counts
// are exact for any valid file (a table header counts one or two brackets and closes on its
// line; a float's dot counts as a key part until the next separator).
void check_structure(std::string_view text, const std::string &path) {
    enum class In { code, comment, basic, literal, multi_basic, multi_literal } in = In::code;
    unsigned depth = 0, line = 1, key_parts = 1, items = 0;
    auto at = [&](std::size_t i, std::string_view s) { return text.substr(i, s.size()) == s; };
    auto refuse = [&](const std::string &what, unsigned limit) {
        throw ConfigError(path, line, what + " " + std::to_string(limit));
    };
    auto new_line = [&] {
        line++;
        items = 0;
    };
    // After a closing """ or ''': up to two more quotes are the string's last characters.
    auto close_multi = [&](std::size_t &i, char quote) {
        i += 2;
        for (int extra = 0; extra < 2 && i + 1 < text.size() && text[i + 1] == quote; extra++) {
            i++;
        }
        in = In::code;
    };
    for (std::size_t i = 0; i < text.size(); i++) {
        char c = text[i];
        if (c == '\n') {
            new_line();
            if (in == In::comment || in == In::basic || in == In::literal) {
                in = In::code;  // a single-line string ends here (toml11 reports it unclosed)
            }
            key_parts = in == In::code ? 1 : key_parts;
            continue;
        }
        switch (in) {
            case In::code:
                if (c == '.' || c == ',' || c == '=') {
                    if (++items > kMaxItemsPerLine) {
                        refuse("more keys and values on one line than", kMaxItemsPerLine);
                    }
                }
                if (c == '.' && ++key_parts > kMaxNesting) {
                    refuse("a dotted key of more parts than", kMaxNesting);
                } else if (c == '=' || c == ',' || c == '[' || c == ']' || c == '{' || c == '}') {
                    key_parts = 1;
                }
                if (c == '#') {
                    in = In::comment;
                } else if (at(i, R"(""")") || at(i, "'''")) {
                    in = c == '"' ? In::multi_basic : In::multi_literal;
                    i += 2;
                } else if (c == '"' || c == '\'') {
                    in = c == '"' ? In::basic : In::literal;
                } else if ((c == '[' || c == '{') && ++depth > kMaxNesting) {
                    refuse("arrays and inline tables nested deeper than", kMaxNesting);
                } else if ((c == ']' || c == '}') && depth > 0) {
                    depth--;
                }
                break;
            case In::basic:
            case In::multi_basic:
                if (c == '\\') {
                    i++;  // the escaped character; a newline after it still ends a line
                    if (i < text.size() && text[i] == '\n') {
                        new_line();
                    }
                } else if (in == In::basic && c == '"') {
                    in = In::code;
                } else if (in == In::multi_basic && at(i, R"(""")")) {
                    close_multi(i, '"');
                }
                break;
            case In::literal:
                in = c == '\'' ? In::code : in;
                break;
            case In::multi_literal:
                if (at(i, "'''")) {
                    close_multi(i, '\'');
                }
                break;
            case In::comment:
                break;
        }
    }
}

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
        // A key can hold " | " too; only a number that fits is a line number.
        unsigned number = 0;
        if (auto [end, ec] = std::from_chars(left.data(), left.data() + left.size(), number);
            !left.empty() && ec == std::errc() && end == left.data() + left.size()) {
            source_line = number;
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
    // What toml11 3.7.1 cannot take safely is refused before it sees the text: absurd sizes,
    // invalid UTF-8 (TOML forbids it; in a literal string toml11 reads past its buffer,
    // toml11 issue #199), deep nesting and crowded lines.
    if (text.size() > kMaxFileSize) {
        throw ConfigError(
            display_path, 0,
            "larger than " + std::to_string(kMaxFileSize >> 20) + " MiB, not a configuration file");
    }
    check_utf8(text, display_path);
    check_structure(text, display_path);
    std::istringstream in{std::string(text)};
    try {
        return toml::parse<toml::discard_comments>(in, display_path);
    } catch (const toml::exception &e) {
        auto line = static_cast<unsigned>(e.location().line());
        // toml11 adds a newline to a text that lacks one and reports an error at the end
        // on the line after it, which the file does not have.
        auto last = static_cast<unsigned>(std::count(text.begin(), text.end(), '\n')) + 1;
        throw ConfigError(display_path, std::clamp(line, 1u, last), syntax_reason(e.what(), line));
    }
}

}  // namespace ppinject
