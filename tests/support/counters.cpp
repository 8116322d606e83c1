#include "support/counters.hpp"

#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "sys/kernel.hpp"

namespace pptest {

Counts counts(std::initializer_list<std::pair<const char *, std::uint64_t>> list) {
    Counts c;
    for (auto [name, value] : list) {
        bool known = false;
        for (const auto &info : ppinject::kCounters) {
            known = known || info.name == name;
        }
        if (!known) {
            throw std::invalid_argument(std::string("no counter named ") + name);
        }
        if (value) {
            c[name] = value;
        }
    }
    return c;
}

Counts read_counters(const bpf_map *counters, std::uint32_t id) {
    int ncpu = libbpf_num_possible_cpus();
    std::vector<pp_counters> per_cpu(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
    Counts c;
    int err = bpf_map__lookup_elem(counters, &id, sizeof id, per_cpu.data(),
                                   per_cpu.size() * sizeof(pp_counters), 0);
    EXPECT_EQ(err, 0) << "counters[" << id << "]: " << std::strerror(-err);
    for (const auto &info : ppinject::kCounters) {
        std::uint64_t sum = 0;
        for (const auto &pc : per_cpu) {
            sum += ppinject::counter_value(pc, info);
        }
        if (sum) {
            c[std::string(info.name)] = sum;
        }
    }
    return c;
}

AllCounts read_all_counters(const bpf_map *counters) {
    AllCounts all;
    for (std::uint32_t id = 0; id < PP_MAX_SERVICES; id++) {
        Counts c = read_counters(counters, id);
        if (!c.empty()) {
            all[id] = c;
        }
    }
    return all;
}

}  // namespace pptest
