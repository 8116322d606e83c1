// Reading a configuration file into a toml11 value, and toml11's several-line messages
// turned into the one-line ConfigError "FILE:LINE: reason". Internal to the config room:
// validate.cpp turns the value into the model.
#pragma once

#include <toml.hpp>

#include <string>
#include <string_view>

namespace ppinject {

// A parsed TOML document; comments are not kept.
using toml_value = toml::basic_value<toml::discard_comments>;

// The whole of `path`. Throws ConfigError "FILE: cannot read: why" (line 0) when it cannot
// be read or is too large to be a configuration file.
std::string read_config_file(const std::string &path);

// Parses TOML text; `display_path` names it in errors. Throws ConfigError
// "FILE:LINE: TOML syntax: what[: note][ (line N: note)]".
toml_value parse_toml(std::string_view text, const std::string &display_path);

}  // namespace ppinject
