// The resolved configuration described for people (`check`) and machines (`check --json`).
// The one part of the config room that speaks JSON, so that config.hpp stays free of it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "config/config.hpp"

namespace ppinject {

// `check`'s text: [global], then each service with its listen specs expanded to the
// prefixes and ports the services map gets, and the map's fill.
std::string describe(const Config &cfg);
// `check --json`: every resolved field of every service (durations also in milliseconds).
nlohmann::json to_json(const Config &cfg);

}  // namespace ppinject
