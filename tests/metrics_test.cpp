// Metrics: the exposition of a hand-made Snapshot is parsed back line by line by an
// independent reader of the text format 0.0.4 (TYPE before samples, one group per family,
// name and label syntax, escapes, numeric values, no duplicate series) and matches
// `status --json` number for number; the HTTP server answers GET/HEAD/404/405/errors on
// 127.0.0.1 and ::1, /healthz with 200 or 503 and the reason, survives clients that send
// nothing, trickle or never read, and stops promptly. Loopback only; every wait is bounded.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "observe/inspect.hpp"
#include "sys/kernel.hpp"
#include "observe/metrics.hpp"
#include "observe/metrics_server.hpp"
#include "support/http_client.hpp"
#include "sys/fd.hpp"

namespace {

using namespace ppinject;
using pptest::connect_to;
using pptest::get;
using pptest::HttpResponse;
using pptest::read_all;
using pptest::roundtrip;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- an independent reader of the text format ---------------------------------------------

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;  // unescaped values
    double value = 0;
    std::string value_text;
};

struct Exposition {
    std::map<std::string, std::string> type;  // family -> counter|gauge|...
    std::map<std::string, std::string> help;  // family -> unescaped help
    std::vector<Sample> samples;

    // The samples of `name` whose labels include `want`.
    std::vector<Sample> find(const std::string &name,
                             const std::map<std::string, std::string> &want = {}) const {
        std::vector<Sample> out;
        for (const auto &s : samples) {
            bool match = s.name == name;
            for (const auto &[k, v] : want) {
                match = match && s.labels.count(k) && s.labels.at(k) == v;
            }
            if (match) {
                out.push_back(s);
            }
        }
        return out;
    }
};

bool metric_name_ok(const std::string &n) {
    if (n.empty() ||
        !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_' || n[0] == ':')) {
        return false;
    }
    for (char c : n) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) {
            return false;
        }
    }
    return true;
}

bool label_name_ok(const std::string &n) {
    return metric_name_ok(n) && n.find(':') == std::string::npos && n.rfind("__", 0) != 0;
}

bool parse_value(const std::string &t, double &v) {
    if (t == "NaN") {
        v = std::numeric_limits<double>::quiet_NaN();
        return true;
    }
    if (t == "+Inf" || t == "-Inf") {
        v = t[0] == '+' ? HUGE_VAL : -HUGE_VAL;
        return true;
    }
    if (t.empty() || t.find_first_not_of("0123456789+-.eE") != std::string::npos) {
        return false;
    }
    char *end = nullptr;
    errno = 0;
    v = std::strtod(t.c_str(), &end);
    return end == t.c_str() + t.size() && errno == 0;
}

// Reads `text`, reporting every rule it breaks as a non-fatal failure naming the line.
Exposition parse_exposition(const std::string &text) {
    Exposition e;
    if (!text.empty() && text.back() != '\n') {
        ADD_FAILURE() << "exposition does not end with a newline";
    }
    std::set<std::string> closed;  // families whose group has ended
    std::string current;           // family of the group being read
    std::set<std::string> series;
    auto enter = [&](const std::string &family, unsigned n) {
        if (family != current) {
            if (closed.count(family)) {
                ADD_FAILURE() << "line " << n << ": family " << family << " appears in two groups";
            }
            if (!current.empty()) {
                closed.insert(current);
            }
            current = family;
        }
    };
    std::size_t pos = 0;
    for (unsigned n = 1; pos < text.size(); n++) {
        std::size_t nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl == std::string::npos ? nl : nl - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        if (line.empty()) {
            ADD_FAILURE() << "line " << n << ": empty line";
            continue;
        }
        if (line[0] == '#') {
            std::string rest = line.substr(1);
            if (rest.rfind(" HELP ", 0) == 0 || rest.rfind(" TYPE ", 0) == 0) {
                bool is_help = rest[1] == 'H';
                std::string body = rest.substr(6);
                std::size_t sp = body.find(' ');
                std::string name = body.substr(0, sp);
                std::string arg = sp == std::string::npos ? "" : body.substr(sp + 1);
                if (!metric_name_ok(name)) {
                    ADD_FAILURE() << "line " << n << ": bad metric name '" << name << "'";
                }
                enter(name, n);
                if (is_help) {
                    if (e.help.count(name)) {
                        ADD_FAILURE() << "line " << n << ": second HELP for " << name;
                    }
                    std::string un;
                    for (std::size_t i = 0; i < arg.size(); i++) {
                        if (arg[i] == '\\' && i + 1 < arg.size() &&
                            (arg[i + 1] == '\\' || arg[i + 1] == 'n')) {
                            un += arg[i + 1] == 'n' ? '\n' : '\\';
                            i++;
                        } else if (arg[i] == '\\') {
                            ADD_FAILURE() << "line " << n << ": bad escape in HELP";
                        } else {
                            un += arg[i];
                        }
                    }
                    e.help[name] = un;
                } else {
                    if (e.type.count(name)) {
                        ADD_FAILURE() << "line " << n << ": second TYPE for " << name;
                    }
                    if (!e.find(name).empty()) {
                        ADD_FAILURE() << "line " << n << ": TYPE after samples of " << name;
                    }
                    static const std::set<std::string> kTypes = {"counter", "gauge", "histogram",
                                                                 "summary", "untyped"};
                    if (!kTypes.count(arg)) {
                        ADD_FAILURE() << "line " << n << ": unknown type '" << arg << "'";
                    }
                    e.type[name] = arg;
                }
            }
            continue;  // other comments are allowed and ignored
        }

        Sample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') {
            i++;
        }
        s.name = line.substr(0, i);
        if (!metric_name_ok(s.name)) {
            ADD_FAILURE() << "line " << n << ": bad metric name '" << s.name << "'";
            continue;
        }
        if (i < line.size() && line[i] == '{') {
            i++;
            while (i < line.size() && line[i] != '}') {
                std::size_t eq = line.find('=', i);
                if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
                    ADD_FAILURE() << "line " << n << ": bad label syntax";
                    break;
                }
                std::string lname = line.substr(i, eq - i);
                if (!label_name_ok(lname)) {
                    ADD_FAILURE() << "line " << n << ": bad label name '" << lname << "'";
                }
                std::string value;
                std::size_t j = eq + 2;
                bool closed_quote = false;
                for (; j < line.size(); j++) {
                    if (line[j] == '\\') {
                        char next = j + 1 < line.size() ? line[j + 1] : '\0';
                        if (next == '\\' || next == '"' || next == 'n') {
                            value += next == 'n' ? '\n' : next;
                            j++;
                        } else {
                            ADD_FAILURE() << "line " << n << ": bad escape in label value";
                        }
                    } else if (line[j] == '"') {
                        closed_quote = true;
                        break;
                    } else {
                        value += line[j];
                    }
                }
                if (!closed_quote) {
                    ADD_FAILURE() << "line " << n << ": unterminated label value";
                    i = line.size() + 1;  // reported: skip the "not closed" report below
                    break;
                }
                if (!s.labels.emplace(lname, value).second) {
                    ADD_FAILURE() << "line " << n << ": label " << lname << " twice";
                }
                i = j + 1;
                if (i < line.size() && line[i] == ',') {
                    i++;
                }
            }
            if (i > line.size()) {
                continue;
            }
            if (i == line.size() || line[i] != '}') {
                ADD_FAILURE() << "line " << n << ": labels not closed";
                continue;
            }
            i++;
        }
        if (i >= line.size() || line[i] != ' ') {
            ADD_FAILURE() << "line " << n << ": no space before the value";
            continue;
        }
        std::string rest = line.substr(i + 1);
        std::size_t sp = rest.find(' ');
        s.value_text = rest.substr(0, sp);
        if (sp != std::string::npos) {  // an optional integer timestamp
            std::string ts = rest.substr(sp + 1);
            if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos) {
                ADD_FAILURE() << "line " << n << ": bad timestamp '" << ts << "'";
            }
        }
        if (!parse_value(s.value_text, s.value)) {
            ADD_FAILURE() << "line " << n << ": value '" << s.value_text << "' is not a number";
        }
        // Counters and gauges: the family is the sample name itself.
        if (!e.type.count(s.name)) {
            ADD_FAILURE() << "line " << n << ": sample of " << s.name << " without a TYPE before";
        }
        enter(s.name, n);
        std::string key = s.name;
        for (const auto &[k, v] : s.labels) {
            key += '\0' + k + '\0' + v;
        }
        if (!series.insert(key).second) {
            ADD_FAILURE() << "line " << n << ": duplicate series " << line;
        }
        e.samples.push_back(std::move(s));
    }
    return e;
}

// The reader itself must be able to say no, or every test built on it proves nothing.
TEST(ExpositionReader, RejectsBrokenInput) {
    EXPECT_NONFATAL_FAILURE(parse_exposition("a 1\n"), "without a TYPE");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\na 1\na 2\n"), "duplicate series");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n"), "twice");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\na{x=\"\\t\"} 1\n"), "bad escape");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\na{x=\"1} 1\n"), "unterminated");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\na one\n"), "not a number");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\n# TYPE a gauge\n"), "second TYPE");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\n# TYPE b gauge\na 1\n"),
                            "two groups");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE 1a gauge\n"), "bad metric name");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\na{1x=\"\"} 1\n"), "bad label name");
    EXPECT_NONFATAL_FAILURE(parse_exposition("# TYPE a gauge\na 1"), "newline");

    Exposition ok = parse_exposition(
        "# HELP a x \\\\ \\n y\n# TYPE a counter\na{l=\"q\\\"b\\\\s\\nn\"} 1.5e3\n");
    ASSERT_EQ(ok.samples.size(), 1u);
    EXPECT_EQ(ok.samples[0].labels.at("l"), "q\"b\\s\nn");
    EXPECT_EQ(ok.samples[0].value, 1500);
    EXPECT_EQ(ok.help.at("a"), "x \\ \n y");
}

// ---- rendering ---------------------------------------------------------------------------

ServiceView service(const std::string &name, std::uint32_t id, std::uint8_t protocol) {
    ServiceView v;
    std::strncpy(v.value.name, name.c_str(), sizeof v.value.name - 1);
    v.value.id = id;
    v.protocol = protocol;
    // Counter k of service id: id * 1000 + k (TCP: + 500), so a value names where it came
    // from.
    for (std::size_t k = 0; k < kCounters.size(); k++) {
        std::uint64_t value = id * 1000 + k;
        std::memcpy(reinterpret_cast<char *>(&v.counters) + kCounters[k].offset, &value,
                    sizeof value);
    }
    for (std::size_t k = 0; k < kTcpStats.size(); k++) {
        std::uint64_t value = id * 1000 + 500 + k;
        std::memcpy(reinterpret_cast<char *>(&v.tcp) + kTcpStats[k].offset, &value, sizeof value);
    }
    return v;
}

// The family a counter is exported as: a gauge for tcp_active, else NAME_total.
std::string family_of(std::string_view counter) {
    return "ppinject_" + std::string(counter) + (counter == "tcp_active" ? "" : "_total");
}

std::size_t series_count(const Snapshot &s) {
    std::size_t n = 0;
    for (const auto &svc : s.services) {
        n += counters_of(svc).size();
    }
    return n;
}

Snapshot sample_snapshot() {
    Snapshot s;
    s.services.push_back(service("dns", 1, IPPROTO_UDP));
    s.services.push_back(service("quic", 2, IPPROTO_UDP));
    s.services.push_back(service("web", 3, IPPROTO_TCP));
    s.services.push_back(service("edge", 4, IPPROTO_TCP));
    s.services.back().value.flags = PP_SVC_INLINE;  // the tc programs count it
    s.flows = 17;
    s.max_flows = 65536;
    s.inline_table = true;
    s.inline_conns = 5;
    s.max_inline_conns = 1000;
    return s;
}

TEST(MetricsRender, SnapshotParsesBackWithEveryCounterPerService) {
    Snapshot s = sample_snapshot();
    std::string text = render_prometheus(s, {"1.2.3"});
    Exposition e = parse_exposition(text);

    for (const auto &svc : s.services) {
        std::string name = svc.value.name;
        for (const auto &[counter, value] : counters_of(svc)) {
            std::string family = family_of(counter);
            ASSERT_EQ(e.type.count(family), 1u) << family;
            EXPECT_EQ(e.type.at(family), counter == "tcp_active" ? "gauge" : "counter");
            auto got = e.find(family, {{"service", name}});
            ASSERT_EQ(got.size(), 1u) << family << " " << name;
            EXPECT_EQ(got[0].labels.size(), 3u);
            EXPECT_EQ(got[0].labels.at("id"), std::to_string(svc.value.id));
            EXPECT_EQ(got[0].labels.at("protocol"), protocol_name(svc.protocol));
            EXPECT_EQ(got[0].value_text, std::to_string(value));
        }
    }
    for (const auto &info : kCounters) {
        EXPECT_EQ(e.help.at(family_of(info.name)), info.help);
    }
    for (const auto &info : kTcpStats) {
        EXPECT_EQ(e.help.at(family_of(info.name)), info.help);
    }
    ASSERT_EQ(e.type.count("ppinject_udp_flows"), 1u);
    EXPECT_EQ(e.type.at("ppinject_udp_flows"), "gauge");
    ASSERT_EQ(e.find("ppinject_udp_flows").size(), 1u);
    EXPECT_EQ(e.find("ppinject_udp_flows")[0].value, 17);
    EXPECT_EQ(e.type.at("ppinject_udp_flows_max"), "gauge");
    ASSERT_EQ(e.find("ppinject_udp_flows_max").size(), 1u);
    EXPECT_EQ(e.find("ppinject_udp_flows_max")[0].value, 65536);
    EXPECT_EQ(e.type.at("ppinject_build_info"), "gauge");
    ASSERT_EQ(e.find("ppinject_build_info", {{"version", "1.2.3"}}).size(), 1u);
    EXPECT_EQ(e.find("ppinject_build_info")[0].value_text, "1");
    EXPECT_EQ(e.type.at("ppinject_inline_conns"), "gauge");
    ASSERT_EQ(e.find("ppinject_inline_conns").size(), 1u);
    EXPECT_EQ(e.find("ppinject_inline_conns")[0].value, 5);
    ASSERT_EQ(e.find("ppinject_inline_conns_max").size(), 1u);
    EXPECT_EQ(e.find("ppinject_inline_conns_max")[0].value, 1000);
    // The inline service's inline_* counters come from `counters` (4000 + their index);
    // the relay service has none, and no tcp_* series is the inline service's.
    std::size_t k = 0;
    while (k < kCounters.size() && kCounters[k].name != "inline_headers") {
        k++;
    }
    ASSERT_LT(k, kCounters.size());
    auto headers = e.find("ppinject_inline_headers_total", {{"service", "edge"}});
    ASSERT_EQ(headers.size(), 1u);
    EXPECT_EQ(headers[0].labels.at("protocol"), "tcp");
    EXPECT_EQ(headers[0].value, 4000 + static_cast<double>(k));
    EXPECT_TRUE(e.find("ppinject_inline_headers_total", {{"service", "web"}}).empty());
    EXPECT_TRUE(e.find("ppinject_tcp_accepted_total", {{"service", "edge"}}).empty());
    EXPECT_EQ(e.help.at("ppinject_inline_no_state_total"),
              "inline TCP segments dropped because no connection state knows them");

    // Nothing else: every family is one of those checked above.
    EXPECT_EQ(e.type.size(), kCounters.size() + kTcpStats.size() + 5);
    EXPECT_EQ(e.samples.size(), series_count(s) + 5);
}

// `status --json` and /metrics are two views of one Snapshot: same names, same numbers.
TEST(MetricsRender, SameNamesAndNumbersAsStatusJson) {
    Snapshot s = sample_snapshot();
    nlohmann::json j = to_json(s);
    Exposition e = parse_exposition(render_prometheus(s, {"x"}));
    ASSERT_EQ(j["services"].size(), s.services.size());
    for (const auto &svc : j["services"]) {
        ASSERT_FALSE(svc["counters"].empty());
        for (const auto &[name, value] : svc["counters"].items()) {
            auto got =
                e.find(family_of(name), {{"service", svc["name"].get<std::string>()},
                                         {"id", std::to_string(svc["id"].get<std::uint32_t>())},
                                         {"protocol", svc["protocol"].get<std::string>()}});
            ASSERT_EQ(got.size(), 1u) << name;
            EXPECT_EQ(got[0].value_text, std::to_string(value.get<std::uint64_t>()));
        }
    }
    EXPECT_EQ(e.find("ppinject_udp_flows")[0].value_text,
              std::to_string(j["udp_flows"]["count"].get<std::uint64_t>()));
    EXPECT_EQ(e.find("ppinject_udp_flows_max")[0].value_text,
              std::to_string(j["udp_flows"]["max"].get<std::uint64_t>()));
}

TEST(MetricsRender, EmptySnapshotIsStillValid) {
    Exposition e = parse_exposition(render_prometheus(Snapshot{}, {"0.1.0"}));
    EXPECT_EQ(e.type.size(), kCounters.size() + kTcpStats.size() + 5);
    EXPECT_EQ(e.samples.size(), 5u);  // flows, capacity, inline conns, capacity, build info
}

TEST(MetricsRender, CountersPast2To53AreExact) {
    Snapshot s;
    s.services.push_back(service("big", 1, IPPROTO_UDP));
    std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    std::memcpy(reinterpret_cast<char *>(&s.services[0].counters) + kCounters[0].offset, &max,
                sizeof max);
    std::string text = render_prometheus(s, {"x"});
    std::string want = "ppinject_" + std::string(kCounters[0].name) +
                       "_total{service=\"big\",id=\"1\",protocol=\"udp\"} 18446744073709551615\n";
    EXPECT_NE(text.find(want), std::string::npos) << text;
}

TEST(MetricsRender, LabelValuesAndHelpAreEscaped) {
    EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    EXPECT_EQ(escape_label_value("plain-name_1"), "plain-name_1");
    EXPECT_EQ(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");  // quotes stay in HELP

    // Through the whole path: a service name and version with every escaped character.
    Snapshot s;
    s.services.push_back(service("q\"b\\s\nn", 1, IPPROTO_UDP));
    Exposition e = parse_exposition(render_prometheus(s, {"v\"1\\\n"}));
    EXPECT_EQ(e.find("ppinject_seen_total", {{"service", "q\"b\\s\nn"}}).size(), 1u);
    EXPECT_EQ(e.find("ppinject_build_info", {{"version", "v\"1\\\n"}}).size(), 1u);

    std::vector<MetricFamily> f;
    f.emplace_back("x_total", MetricType::counter, "back\\slash\nnew \"line\"").add({}, 1.0);
    std::string text = render_exposition(f);
    EXPECT_EQ(text,
              "# HELP x_total back\\\\slash\\nnew \"line\"\n# TYPE x_total counter\n"
              "x_total 1\n");
    EXPECT_EQ(parse_exposition(text).help.at("x_total"), "back\\slash\nnew \"line\"");
}

// The builder other parts of the daemon will use: values, and refusals of what a scraper
// would reject.
TEST(MetricFamily, ValuesAndRefusals) {
    MetricFamily g("ppinject_test", MetricType::gauge, "test");
    g.add({{"k", "nan"}}, std::numeric_limits<double>::quiet_NaN())
        .add({{"k", "inf"}}, HUGE_VAL)
        .add({{"k", "-inf"}}, -HUGE_VAL)
        .add({{"k", "half"}}, 0.5)
        .add({{"k", "big"}}, 1e20)
        .add({{"k", "neg"}}, std::int64_t{-3});
    std::vector<MetricFamily> fs{g};
    Exposition e = parse_exposition(render_exposition(fs));
    ASSERT_EQ(e.samples.size(), 6u);
    EXPECT_TRUE(std::isnan(e.find("ppinject_test", {{"k", "nan"}})[0].value));
    EXPECT_EQ(e.find("ppinject_test", {{"k", "inf"}})[0].value_text, "+Inf");
    EXPECT_EQ(e.find("ppinject_test", {{"k", "-inf"}})[0].value_text, "-Inf");
    EXPECT_EQ(e.find("ppinject_test", {{"k", "half"}})[0].value, 0.5);
    EXPECT_EQ(e.find("ppinject_test", {{"k", "big"}})[0].value, 1e20);
    EXPECT_EQ(e.find("ppinject_test", {{"k", "neg"}})[0].value_text, "-3");

    EXPECT_THROW(MetricFamily("1bad", MetricType::gauge, ""), std::invalid_argument);
    EXPECT_THROW(MetricFamily("bad-name", MetricType::gauge, ""), std::invalid_argument);
    MetricFamily f("ok", MetricType::gauge, "");
    EXPECT_THROW(f.add({{"__reserved", "x"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(f.add({{"a:b", "x"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(f.add({{"a", "x"}, {"a", "y"}}, 1.0), std::invalid_argument);
    f.add({{"a", "1"}, {"b", "2"}}, 1.0);
    EXPECT_THROW(f.add({{"b", "2"}, {"a", "1"}}, 2.0), std::invalid_argument);  // same series
    f.add({{"a", "1"}, {"b", "3"}}, 1.0);
    EXPECT_EQ(f.size(), 2u);
    std::vector<MetricFamily> twice{f, f};
    EXPECT_THROW(render_exposition(twice), std::invalid_argument);
}

// ---- the HTTP server ---------------------------------------------------------------------

Endpoint loopback4() {
    return *Endpoint::parse("127.0.0.1:0");
}

// A server whose body counts how often it was asked for, with a health answer tests set.
struct Served {
    std::atomic<int> calls{0};
    std::atomic<int> health_calls{0};
    std::mutex mu;  // tests change the body while the server thread may read it
    std::string body = "# HELP x y\n# TYPE x gauge\nx 1\n";
    std::string health;  // "" healthy, else the reason
    MetricsServer server;

    explicit Served(const Endpoint &at = loopback4(), MetricsServerOptions opts = {})
        : server(
              at,
              [this] {
                  calls++;
                  std::lock_guard lock(mu);
                  return body;
              },
              [this] {
                  health_calls++;
                  std::lock_guard lock(mu);
                  return health;
              },
              opts) {}

    void set_body(std::string b) {
        std::lock_guard lock(mu);
        body = std::move(b);
    }
    void set_health(std::string h) {
        std::lock_guard lock(mu);
        health = std::move(h);
    }
};

TEST(MetricsServer, GetMetrics) {
    Served s;
    EXPECT_EQ(s.server.local_endpoint().addr, *IpAddress::parse("127.0.0.1"));
    ASSERT_NE(s.server.local_endpoint().port, 0);
    HttpResponse r = roundtrip(s.server.local_endpoint(), get("/metrics"));
    EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(r.headers["content-length"], std::to_string(s.body.size()));
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_TRUE(r.headers.count("date"));
    EXPECT_EQ(r.body, s.body);
    EXPECT_EQ(s.calls.load(), 1);

    // A query string (Prometheus `params`), absolute-form, HTTP/1.0 without Host, bare LFs.
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), get("/metrics?module=x")).status, 200);
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), get("http://localhost:1/metrics")).status, 200);
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), "GET /metrics HTTP/1.0\r\n\r\n").status, 200);
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), "GET /metrics HTTP/1.0\n\n").body, s.body);
    EXPECT_EQ(s.calls.load(), 5);
}

TEST(MetricsServer, RealBodyOverIpv6) {
    Snapshot snap = sample_snapshot();
    MetricsServer server(*Endpoint::parse("[::1]:0"),
                         [&] { return render_prometheus(snap, {"9.9.9"}); });
    EXPECT_EQ(server.local_endpoint().addr, *IpAddress::parse("::1"));
    HttpResponse r = roundtrip(server.local_endpoint(), get("/metrics"));
    EXPECT_EQ(r.status, 200);
    Exposition e = parse_exposition(r.body);
    EXPECT_EQ(e.samples.size(), series_count(snap) + 5);
    EXPECT_EQ(e.find("ppinject_build_info", {{"version", "9.9.9"}}).size(), 1u);
}

TEST(MetricsServer, HeadHasGetsHeadersWithoutBody) {
    Served s;
    HttpResponse r = roundtrip(s.server.local_endpoint(), get("/metrics", "HEAD"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-length"], std::to_string(s.body.size()));
    EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(r.body, "");
}

TEST(MetricsServer, OtherPathsAndMethods) {
    Served s;
    for (std::string path : {"/", "/metricsx", "/metrics/", "/favicon.ico"}) {
        HttpResponse r = roundtrip(s.server.local_endpoint(), get(path));
        EXPECT_EQ(r.status, 404) << path;
        EXPECT_EQ(r.headers["content-length"], std::to_string(r.body.size())) << path;
    }
    for (std::string method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
        HttpResponse r = roundtrip(s.server.local_endpoint(), get("/metrics", method));
        EXPECT_EQ(r.status, 405) << method;
        EXPECT_EQ(r.headers["allow"], "GET, HEAD") << method;
        EXPECT_EQ(r.headers["connection"], "close");
    }
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), get("/nothing", "HEAD")).body, "");
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), get("/healthz", "POST")).status, 405);
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), get("/healthz/")).status, 404);
    EXPECT_EQ(s.calls.load(), 0) << "the body is made only for GET and HEAD of /metrics";
    EXPECT_EQ(s.health_calls.load(), 0) << "the check runs only for GET and HEAD of /healthz";
}

TEST(MetricsServer, HealthzIsOkOr503WithTheReason) {
    Served s;
    const Endpoint &at = s.server.local_endpoint();
    HttpResponse r = roundtrip(at, get("/healthz"));
    EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(r.body, "ok\n");
    EXPECT_EQ(r.headers["content-type"], "text/plain; charset=utf-8");
    EXPECT_EQ(roundtrip(at, get("/healthz?from=bird")).status, 200);

    s.set_health("udp service \"dns\": interface eth9 is gone");
    r = roundtrip(at, get("/healthz"));
    EXPECT_EQ(r.status_line, "HTTP/1.1 503 Service Unavailable");
    EXPECT_EQ(r.body, "udp service \"dns\": interface eth9 is gone\n");
    r = roundtrip(at, get("/healthz", "HEAD"));
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, "");
    EXPECT_EQ(r.headers["content-length"], "42");
    // A reason is one line whatever the check returns.
    s.set_health("two\nlines\r");
    EXPECT_EQ(roundtrip(at, get("/healthz")).body, "two lines \n");
    EXPECT_EQ(s.health_calls.load(), 5);
    EXPECT_EQ(s.calls.load(), 0);
}

TEST(MetricsServer, HealthCheckThatThrowsIs503AndNoCheckIs404) {
    MetricsServer server(
        loopback4(), [] { return std::string(); },
        []() -> std::string { throw std::runtime_error("no ppinject state at /sys/fs/bpf/x"); });
    HttpResponse r = roundtrip(server.local_endpoint(), get("/healthz"));
    EXPECT_EQ(r.status, 503) << "a check that cannot run must not say healthy";
    EXPECT_EQ(r.body, "no ppinject state at /sys/fs/bpf/x\n");
    MetricsServer metrics_only(loopback4(), [] { return std::string(); });
    EXPECT_EQ(roundtrip(metrics_only.local_endpoint(), get("/healthz")).status, 404);
}

TEST(MetricsServer, MalformedRequests) {
    Served s;
    const Endpoint &at = s.server.local_endpoint();
    EXPECT_EQ(roundtrip(at, "GET /metrics HTTP/1.1\r\n\r\n").status, 400);  // no Host
    EXPECT_EQ(roundtrip(at, "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status, 400);
    EXPECT_EQ(roundtrip(at, "GET /metrics\r\n\r\n").status, 400);
    EXPECT_EQ(roundtrip(at, "GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
    EXPECT_EQ(roundtrip(at, "GET /metrics HTTP/1.1\r\nHost : a\r\n\r\n").status, 400);
    EXPECT_EQ(roundtrip(at, "GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n").status, 400);
    EXPECT_EQ(roundtrip(at, "GET /metrics FTP/1.1\r\n\r\n").status, 400);
    EXPECT_EQ(roundtrip(at, "GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n").status, 505);
    EXPECT_EQ(roundtrip(at, "\x16\x03\x01\x02\x01\r\n\r\n").status, 400);  // TLS to plain HTTP
    EXPECT_EQ(s.calls.load(), 0);
}

TEST(MetricsServer, OversizedRequestGets431) {
    Served s(loopback4(), {.max_request_bytes = 1024});
    std::string req =
        "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(4000, 'x') + "\r\n\r\n";
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), req).status, 431);
    // One that never ends its head is refused as soon as it passes the limit.
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), std::string(2000, 'G')).status, 431);
    EXPECT_EQ(s.calls.load(), 0);
}

// Bytes after the head (a body, a pipelined request) are read and discarded, so closing does
// not reset the connection under the client's unread response.
TEST(MetricsServer, BytesAfterTheHeadDoNotResetTheResponse) {
    Served s;
    s.set_body(std::string(200000, 'm') + "\n");
    std::string req = "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
                      get("/metrics") + get("/metrics");
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), req).status, 405);
    HttpResponse r = roundtrip(s.server.local_endpoint(), get("/metrics") + get("/metrics"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, s.body);  // exactly one response, all of it
}

TEST(MetricsServer, BodyErrorIs500) {
    MetricsServer server(loopback4(), []() -> std::string {
        throw std::runtime_error("no ppinject state at /sys/fs/bpf/x");
    });
    HttpResponse r = roundtrip(server.local_endpoint(), get("/metrics"));
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(r.body.find("no ppinject state at /sys/fs/bpf/x"), std::string::npos) << r.body;
}

TEST(MetricsServer, BindErrorsAreOneLine) {
    Served s;
    std::string at = s.server.local_endpoint().to_string();
    try {
        MetricsServer second(s.server.local_endpoint(), [] { return std::string(); });
        ADD_FAILURE() << "a second server bound " << at;
    } catch (const std::runtime_error &e) {
        EXPECT_EQ(std::string(e.what()), "metrics: bind " + at + ": Address already in use");
    }
    // An address this host does not have (TEST-NET-1).
    try {
        MetricsServer elsewhere(*Endpoint::parse("192.0.2.1:9477"), [] { return std::string(); });
        ADD_FAILURE() << "bound 192.0.2.1";
    } catch (const std::runtime_error &e) {
        EXPECT_EQ(std::string(e.what()),
                  "metrics: bind 192.0.2.1:9477: Cannot assign requested address");
    }
    // The first one is unharmed.
    EXPECT_EQ(roundtrip(s.server.local_endpoint(), get("/metrics")).status, 200);
}

// Seconds from now until the server closes `fd` (EOF or reset), at most `budget`.
double seconds_until_closed(int fd, std::chrono::milliseconds budget) {
    auto start = Clock::now();
    pollfd p{fd, POLLIN, 0};
    while (Clock::now() - start < budget) {
        int left = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(budget - (Clock::now() - start))
                .count());
        if (poll(&p, 1, std::max(left, 1)) > 0) {
            char buf[65536];
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
                break;
            }
        }
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(MetricsServer, SilentClientIsClosedAndDoesNotBlockOthers) {
    Served s(loopback4(), {.timeout = 1500ms});
    Fd silent = connect_to(s.server.local_endpoint());
    ASSERT_GE(silent.get(), 0);
    std::this_thread::sleep_for(100ms);  // the server has accepted it and waits for bytes

    auto start = Clock::now();
    HttpResponse r = roundtrip(s.server.local_endpoint(), get("/metrics"));
    double other = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(other, 1.0) << "a second client waited for the silent one";

    double closed_after = 0.1 + other + seconds_until_closed(silent.get(), 5000ms);
    EXPECT_GT(closed_after, 1.2) << "closed before its timeout";
    EXPECT_LT(closed_after, 3.0) << "not closed at its timeout";
}

// A client trickling a byte at a time never completes a request: the deadline is for the
// whole request, not for each read.
TEST(MetricsServer, TricklingClientIsClosedAtTheDeadline) {
    Served s(loopback4(), {.timeout = 800ms});
    Fd fd = connect_to(s.server.local_endpoint());
    ASSERT_GE(fd.get(), 0);
    auto start = Clock::now();
    std::string req = get("/metrics");
    bool closed = false;
    for (std::size_t i = 0; i < req.size() && Clock::now() - start < 4s; i++) {
        if (send(fd.get(), &req[i], 1, MSG_NOSIGNAL) != 1) {
            closed = true;
            break;
        }
        pollfd p{fd.get(), POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            closed = true;
            break;
        }
    }
    double t = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_TRUE(closed) << "still open after " << t << " s";
    EXPECT_LT(t, 2.5);
    EXPECT_EQ(s.calls.load(), 0);
}

// A client that asks for a large body and never reads it: the server's send blocks on a full
// socket buffer, yet others are served and the reader-less connection ends at its deadline.
TEST(MetricsServer, ClientThatNeverReadsDoesNotBlockOthers) {
    Served s(loopback4(), {.timeout = 1000ms});
    s.set_body(std::string(16 << 20, 'x'));
    Fd lazy = connect_to(s.server.local_endpoint());
    ASSERT_GE(lazy.get(), 0);
    int small = 4096;
    setsockopt(lazy.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    std::string req = get("/metrics");
    ASSERT_EQ(send(lazy.get(), req.data(), req.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(req.size()));
    std::this_thread::sleep_for(100ms);

    s.set_body("small\n");
    auto start = Clock::now();
    HttpResponse r = roundtrip(s.server.local_endpoint(), get("/metrics"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "small\n");
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 0.8);

    // Its deadline passes; the server resets it rather than trickle 16 MiB to it.
    std::this_thread::sleep_for(1200ms);
    auto t0 = Clock::now();
    bool eof = false;
    std::string got = read_all(lazy.get(), &eof, 3000ms);
    int err = errno;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.5);
    EXPECT_TRUE(eof || err == ECONNRESET) << std::strerror(err);
    EXPECT_LT(got.size(), std::size_t{16 << 20});
}

TEST(MetricsServer, ConnectionLimitQueuesInTheBacklog) {
    Served s(loopback4(), {.timeout = 600ms, .max_connections = 2});
    Fd a = connect_to(s.server.local_endpoint());
    Fd b = connect_to(s.server.local_endpoint());
    ASSERT_GE(a.get(), 0);
    ASSERT_GE(b.get(), 0);
    std::this_thread::sleep_for(100ms);
    auto start = Clock::now();
    HttpResponse r = roundtrip(s.server.local_endpoint(), get("/metrics"));
    double t = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(r.status, 200);
    EXPECT_GT(t, 0.3) << "served past the connection limit";
    EXPECT_LT(t, 3.0) << "never served after the idle ones timed out";
    a.reset();
    b.reset();
}

TEST(MetricsServer, StopIsPromptWithClientsConnected) {
    auto s = std::make_unique<Served>(loopback4(), MetricsServerOptions{.timeout = 60s});
    Endpoint at = s->server.local_endpoint();
    Fd idle = connect_to(at);
    Fd partial = connect_to(at);
    ASSERT_GE(idle.get(), 0);
    ASSERT_GE(partial.get(), 0);
    ASSERT_EQ(send(partial.get(), "GET /met", 8, MSG_NOSIGNAL), 8);
    std::this_thread::sleep_for(100ms);

    auto start = Clock::now();
    s->server.stop();
    double t = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_LT(t, 0.5);
    s->server.stop();  // idempotent
    EXPECT_LT(seconds_until_closed(idle.get(), 1000ms), 0.9) << "open connections are closed";
    EXPECT_LT(seconds_until_closed(partial.get(), 1000ms), 0.9);

    // Nothing listens any more.
    sockaddr_storage ss{};
    socklen_t len = at.to_sockaddr(ss);
    Fd fd(socket(AF_INET, SOCK_STREAM, 0));
    EXPECT_NE(connect(fd.get(), reinterpret_cast<sockaddr *>(&ss), len), 0);
    EXPECT_EQ(errno, ECONNREFUSED);
    fd.reset();
    idle.reset();
    partial.reset();
    s.reset();  // the destructor after stop() is fine too
}

TEST(MetricsServer, DestructorStops) {
    Endpoint at;
    {
        Served s;
        at = s.server.local_endpoint();
        EXPECT_EQ(roundtrip(at, get("/metrics")).status, 200);
    }
    // The port is free again: a new server binds it (SO_REUSEADDR covers TIME_WAIT).
    Served again(at);
    EXPECT_EQ(roundtrip(at, get("/metrics")).status, 200);
}

}  // namespace
