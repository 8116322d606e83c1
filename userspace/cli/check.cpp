#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/describe.hpp"

namespace ppinject::cli {

int check(const CheckOptions &opts) {
    try {
        Config cfg = load_config(opts.config);
        if (opts.json) {
            std::cout << to_json(cfg).dump(2) << "\n";
        } else {
            std::cout << describe(cfg) << "\nconfig OK: " << cfg.services.size() << " service"
                      << (cfg.services.size() == 1 ? "" : "s") << "\n";
        }
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}

}  // namespace ppinject::cli
