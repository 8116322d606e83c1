#include "observe/metrics.hpp"

#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

namespace ppinject {
namespace {

bool name_start(char c, bool colon) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
bool name_char(char c, bool colon) {
    return name_start(c, colon) || (c >= '0' && c <= '9');
}
bool valid_name(std::string_view name, bool colon) {
    if (name.empty() || !name_start(name[0], colon)) {
        return false;
    }
    return std::all_of(name.begin() + 1, name.end(), [&](char c) { return name_char(c, colon); });
}

// The series identity of a label set: order does not make a different series.
std::string series_key(const MetricLabels &labels) {
    MetricLabels sorted = labels;
    std::sort(sorted.begin(), sorted.end());
    std::string key;
    for (const auto &[n, v] : sorted) {
        // '\0' cannot occur in a valid label name, so it separates unambiguously.
        key += n;
        key += '\0';
        key += escape_label_value(v);
        key += '\0';
    }
    return key;
}

std::string type_name(MetricType t) {
    return t == MetricType::counter ? "counter" : "gauge";
}

std::string service_name(const pp_service &v) {
    return std::string(v.name, strnlen(v.name, sizeof v.name));
}

}  // namespace

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string escape_help(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

bool valid_metric_name(std::string_view name) {
    return valid_name(name, true);
}

bool valid_label_name(std::string_view name) {
    return valid_name(name, false) && !name.starts_with("__");
}

MetricFamily::MetricFamily(std::string name, MetricType type, std::string help)
    : name_(std::move(name)), type_(type), help_(std::move(help)) {
    if (!valid_metric_name(name_)) {
        throw std::invalid_argument("metric name '" + name_ + "' is not valid");
    }
}

MetricFamily &MetricFamily::add(const MetricLabels &labels, std::uint64_t value) {
    return add_formatted(labels, std::to_string(value));
}

MetricFamily &MetricFamily::add(const MetricLabels &labels, std::int64_t value) {
    return add_formatted(labels, std::to_string(value));
}

MetricFamily &MetricFamily::add(const MetricLabels &labels, double value) {
    std::string text;
    if (std::isnan(value)) {
        text = "NaN";
    } else if (std::isinf(value)) {
        text = value > 0 ? "+Inf" : "-Inf";
    } else {
        // fmt's "{}" is the shortest text that reads back as the same double.
        text = fmt::format("{}", value);
    }
    return add_formatted(labels, std::move(text));
}

MetricFamily &MetricFamily::add_formatted(const MetricLabels &labels, std::string value) {
    std::set<std::string_view> names;
    std::string text;
    for (const auto &[n, v] : labels) {
        if (!valid_label_name(n)) {
            throw std::invalid_argument(name_ + ": label name '" + n + "' is not valid");
        }
        if (!names.insert(n).second) {
            throw std::invalid_argument(name_ + ": label '" + n + "' given twice");
        }
        text += text.empty() ? "{" : ",";
        text += n + "=\"" + escape_label_value(v) + "\"";
    }
    if (!text.empty()) {
        text += "}";
    }
    if (!series_.insert(series_key(labels)).second) {
        throw std::invalid_argument(name_ + text + ": series given twice");
    }
    samples_.emplace_back(std::move(text), std::move(value));
    return *this;
}

void MetricFamily::write(std::string &out) const {
    out += "# HELP " + name_ + " " + escape_help(help_) + "\n";
    out += "# TYPE " + name_ + " " + type_name(type_) + "\n";
    for (const auto &[labels, value] : samples_) {
        out += name_ + labels + " " + value + "\n";
    }
}

std::string render_exposition(std::span<const MetricFamily> families) {
    std::set<std::string_view> seen;
    std::string out;
    for (const auto &f : families) {
        if (!seen.insert(f.name()).second) {
            throw std::invalid_argument("metric family '" + f.name() + "' given twice");
        }
        f.write(out);
    }
    return out;
}

std::vector<MetricFamily> snapshot_families(const Snapshot &s, const BuildInfo &build) {
    std::vector<MetricFamily> families;
    families.reserve(kCounters.size() + kTcpStats.size() + 5);
    // One family per counter, with a series for each service that counts it (the tc
    // programs' counters: UDP and inline TCP; the relay's: relay TCP); tcp_active is the
    // one gauge.
    auto add_families = [&](const auto &infos, bool kernel_counted, auto value_of) {
        for (const auto &info : infos) {
            bool gauge = info.name == "tcp_active";
            MetricFamily &f = families.emplace_back(
                fmt::format("ppinject_{}{}", info.name, gauge ? "" : "_total"),
                gauge ? MetricType::gauge : MetricType::counter, std::string(info.help));
            for (const auto &svc : s.services) {
                if (svc.kernel_counted() == kernel_counted) {
                    f.add({{"service", service_name(svc.value)},
                           {"id", std::to_string(svc.value.id)},
                           {"protocol", protocol_name(svc.protocol)}},
                          value_of(svc, info));
                }
            }
        }
    };
    add_families(kCounters, true, [](const ServiceView &svc, const CounterInfo &info) {
        return counter_value(svc.counters, info);
    });
    add_families(kTcpStats, false, [](const ServiceView &svc, const CounterInfo &info) {
        return counter_value(svc.tcp, info);
    });
    families
        .emplace_back("ppinject_udp_flows", MetricType::gauge,
                      "entries in the UDP flow table (udp_flows)")
        .add({}, s.flows);
    families
        .emplace_back("ppinject_udp_flows_max", MetricType::gauge,
                      "capacity of the UDP flow table (udp_max_flows)")
        .add({}, s.max_flows);
    families
        .emplace_back("ppinject_inline_conns", MetricType::gauge,
                      "entries in the inline TCP connection table (inline_conns)")
        .add({}, s.inline_conns);
    families
        .emplace_back("ppinject_inline_conns_max", MetricType::gauge,
                      "capacity of the inline TCP connection table (inline_max_conns; 0: not "
                      "pinned)")
        .add({}, s.max_inline_conns);
    families
        .emplace_back("ppinject_build_info", MetricType::gauge,
                      "always 1; the labels say which ppinject is running")
        .add({{"version", build.version}}, std::uint64_t{1});
    return families;
}

std::string render_prometheus(const Snapshot &s, const BuildInfo &build) {
    auto families = snapshot_families(s, build);
    return render_exposition(families);
}

}  // namespace ppinject
