// Prometheus text exposition (format 0.0.4) of ppinject's state: a small family builder that
// any part of the daemon can fill, and the families a Snapshot of the pinned maps gives.
// Names follow `status --json`: the counter `seen` is `ppinject_seen_total`, the flow table's
// {"count", "max"} are `ppinject_udp_flows` and `ppinject_udp_flows_max`.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "observe/inspect.hpp"

namespace ppinject {

enum class MetricType { counter, gauge };

// Label name and value, in the order they are written.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// One metric family: its HELP and TYPE lines and its samples. The exposition format wants all
// of a family's lines in one group, so samples are collected here and written together.
// Invalid names (metric or label), duplicate label names in a sample and a series added twice
// are programming errors: they throw std::invalid_argument rather than produce an exposition
// that a scraper would reject as a whole.
class MetricFamily {
  public:
    // `name` is the full sample name (counters end in "_total" by convention; the text
    // format 0.0.4 puts that same name on the TYPE line).
    MetricFamily(std::string name, MetricType type, std::string help);

    // Integer values are written exactly: a float64 would round counters past 2^53.
    MetricFamily &add(const MetricLabels &labels, std::uint64_t value);
    MetricFamily &add(const MetricLabels &labels, std::int64_t value);
    MetricFamily &add(const MetricLabels &labels, double value);  // NaN, +Inf, -Inf allowed

    const std::string &name() const { return name_; }
    MetricType type() const { return type_; }
    std::size_t size() const { return samples_.size(); }

    // Appends HELP, TYPE and every sample line to `out`.
    void write(std::string &out) const;

  private:
    MetricFamily &add_formatted(const MetricLabels &labels, std::string value);

    std::string name_;
    MetricType type_;
    std::string help_;
    // "{a=\"x\",b=\"y\"}" (or "" without labels) and the formatted value.
    std::vector<std::pair<std::string, std::string>> samples_;
    std::set<std::string> series_;  // label sets already added, order-independent
};

// The exposition of `families`, in order. Throws std::invalid_argument when two families share
// a name (their lines would interleave into one family with two TYPE lines).
std::string render_exposition(std::span<const MetricFamily> families);

// What `ppinject_build_info` reports.
struct BuildInfo {
    std::string version;  // PPINJECT_VERSION
};

// The families a Snapshot gives: one counter family per PP_COUNTER_LIST entry with a sample per
// service (labels service, id, protocol), the UDP flow table's size and capacity, build info.
// Callers append their own families (TCP connections, backends) and render them together.
std::vector<MetricFamily> snapshot_families(const Snapshot &s, const BuildInfo &build);

// render_exposition(snapshot_families(s, build)).
std::string render_prometheus(const Snapshot &s, const BuildInfo &build);

// Content-Type of the text format 0.0.4.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Escaping of the text format: label values escape backslash, double quote and newline;
// HELP text escapes backslash and newline only.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);

// [a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__", reserved).
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

}  // namespace ppinject
