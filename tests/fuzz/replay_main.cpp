// A libFuzzer-style main without libFuzzer: runs the target once on every file named on
// the command line (directories: every file in them, in name order), so the normal build
// replays the seed corpus and the saved regressions as a test. A property violation aborts;
// no input at all is an error too (a replay that checks nothing must not pass).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz.hpp"

int main(int argc, char **argv) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; i++) {
        std::error_code ec;
        fs::file_type type = fs::status(argv[i], ec).type();
        if (type == fs::file_type::directory) {
            for (const auto &entry : fs::directory_iterator(argv[i])) {
                if (entry.is_regular_file()) {
                    files.push_back(entry.path());
                }
            }
        } else if (type == fs::file_type::regular) {
            files.emplace_back(argv[i]);
        } else if (type != fs::file_type::not_found) {
            // (a target without saved regressions has no directory for them: not_found)
            std::fprintf(stderr, "replay: %s: not a file or directory\n", argv[i]);
            return 1;
        }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::fprintf(stderr, "replay: no input files in the paths given\n");
        return 1;
    }
    for (const fs::path &f : files) {
        std::ifstream in(f, std::ios::binary);
        std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)),
                                       std::istreambuf_iterator<char>());
        if (!in.eof() && in.fail()) {
            std::fprintf(stderr, "replay: cannot read %s\n", f.c_str());
            return 1;
        }
        std::fprintf(stderr, "replay: %s (%zu bytes)\n", f.c_str(), data.size());
        LLVMFuzzerTestOneInput(data.data(), data.size());
    }
    std::fprintf(stderr, "replay: %zu inputs, every property held\n", files.size());
    return 0;
}
