// The kernel boundary, field by field: every struct of bpf/ppinject.h as g++ lays it out
// (the table below, from offsetof and sizeof) against the BTF that clang wrote into each
// built BPF object. Both ways: a struct or field of the table that an object lays out
// differently fails, and so does a pp_* struct or a field that the BTF has and the table
// does not (a field added to the header needs its row here). No root needed: only the
// object files are read.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "sys/kernel.hpp"

namespace {

// One field as g++ lays it out.
struct Field {
    std::string name;
    std::size_t offset;
    std::size_t size;
};

// One struct of bpf/ppinject.h as g++ lays it out.
struct Layout {
    std::string name;
    std::size_t size;
    std::vector<Field> fields;
};

#define PP_STRUCT(type, ...)   \
    Layout {                   \
#type, sizeof(type), { \
            __VA_ARGS__        \
        }                      \
    }
#define PP_FIELD(type, field)                              \
    Field {                                                \
#field, offsetof(type, field), sizeof(type::field) \
    }

// The counters' fields as userspace reads them: by name and offset from the X-macro lists,
// each a u64 (counter_value reads 8 bytes).
std::vector<Field> counter_fields(std::span<const ppinject::CounterInfo> list) {
    std::vector<Field> out;
    for (const auto &c : list) {
        out.push_back({std::string(c.name), c.offset, sizeof(std::uint64_t)});
    }
    return out;
}

const std::vector<Layout> &shared_structs() {
    static const std::vector<Layout> table = {
        PP_STRUCT(pp_service_key,                       //
                  PP_FIELD(pp_service_key, prefixlen),  //
                  PP_FIELD(pp_service_key, protocol),   //
                  PP_FIELD(pp_service_key, pad0),       //
                  PP_FIELD(pp_service_key, port),       //
                  PP_FIELD(pp_service_key, addr)),
        PP_STRUCT(pp_address_key,                       //
                  PP_FIELD(pp_address_key, prefixlen),  //
                  PP_FIELD(pp_address_key, addr)),
        PP_STRUCT(pp_service,                             //
                  PP_FIELD(pp_service, flow_timeout_ns),  //
                  PP_FIELD(pp_service, id),               //
                  PP_FIELD(pp_service, header),           //
                  PP_FIELD(pp_service, udp_header),       //
                  PP_FIELD(pp_service, on_error),         //
                  PP_FIELD(pp_service, flags),            //
                  PP_FIELD(pp_service, name)),
        PP_STRUCT(pp_flow_key,                          //
                  PP_FIELD(pp_flow_key, client_addr),   //
                  PP_FIELD(pp_flow_key, service_addr),  //
                  PP_FIELD(pp_flow_key, client_port),   //
                  PP_FIELD(pp_flow_key, service_port)),
        PP_STRUCT(pp_flow,                          //
                  PP_FIELD(pp_flow, created_ns),    //
                  PP_FIELD(pp_flow, last_seen_ns),  //
                  PP_FIELD(pp_flow, packets),       //
                  PP_FIELD(pp_flow, bytes),         //
                  PP_FIELD(pp_flow, service_id),    //
                  PP_FIELD(pp_flow, pad0)),
        PP_STRUCT(pp_attachment,                                    //
                  PP_FIELD(pp_attachment, ingress_prog_id),         //
                  PP_FIELD(pp_attachment, egress_prog_id),          //
                  PP_FIELD(pp_attachment, xdp_prog_id),             //
                  PP_FIELD(pp_attachment, inline_ingress_prog_id),  //
                  PP_FIELD(pp_attachment, inline_egress_prog_id),   //
                  PP_FIELD(pp_attachment, created_clsact),          //
                  PP_FIELD(pp_attachment, xdp_mode),                //
                  PP_FIELD(pp_attachment, pad0),                    //
                  PP_FIELD(pp_attachment, ifname),                  //
                  PP_FIELD(pp_attachment, services)),
        Layout{"pp_counters", sizeof(pp_counters), counter_fields(ppinject::kCounters)},
        PP_STRUCT(pp_inline_conn,                             //
                  PP_FIELD(pp_inline_conn, created_ns),       //
                  PP_FIELD(pp_inline_conn, last_seen_ns),     //
                  PP_FIELD(pp_inline_conn, packets_in),       //
                  PP_FIELD(pp_inline_conn, packets_out),      //
                  PP_FIELD(pp_inline_conn, bytes_in),         //
                  PP_FIELD(pp_inline_conn, bytes_out),        //
                  PP_FIELD(pp_inline_conn, isn),              //
                  PP_FIELD(pp_inline_conn, service_id),       //
                  PP_FIELD(pp_inline_conn, hdr_len),          //
                  PP_FIELD(pp_inline_conn, flags),            //
                  PP_FIELD(pp_inline_conn, flags_backend),    //
                  PP_FIELD(pp_inline_conn, idle_timeout_ms),  //
                  PP_FIELD(pp_inline_conn, hdr)),
        PP_STRUCT(pp_inline_tlvs,                          //
                  PP_FIELD(pp_inline_tlvs, len),           //
                  PP_FIELD(pp_inline_tlvs, unique_id_at),  //
                  PP_FIELD(pp_inline_tlvs, crc32c_at),     //
                  PP_FIELD(pp_inline_tlvs, pad0),          //
                  PP_FIELD(pp_inline_tlvs, tlvs)),
        PP_STRUCT(pp_tcp_peer,                         //
                  PP_FIELD(pp_tcp_peer, peer_cookie),  //
                  PP_FIELD(pp_tcp_peer, conn),         //
                  PP_FIELD(pp_tcp_peer, service_id),   //
                  PP_FIELD(pp_tcp_peer, dir),          //
                  PP_FIELD(pp_tcp_peer, seq_known),    //
                  PP_FIELD(pp_tcp_peer, pad0),         //
                  PP_FIELD(pp_tcp_peer, next_seq)),
        PP_STRUCT(pp_tcp_conn,                        //
                  PP_FIELD(pp_tcp_conn, redirected),  //
                  PP_FIELD(pp_tcp_conn, held),        //
                  PP_FIELD(pp_tcp_conn, copied),      //
                  PP_FIELD(pp_tcp_conn, hold),        //
                  PP_FIELD(pp_tcp_conn, broken),      //
                  PP_FIELD(pp_tcp_conn, pad0)),
        Layout{"pp_tcp_stats", sizeof(pp_tcp_stats), counter_fields(ppinject::kTcpStats)},
    };
    return table;
}

#undef PP_FIELD
#undef PP_STRUCT

const Layout *find_layout(const std::string &name) {
    for (const auto &l : shared_structs()) {
        if (l.name == name) {
            return &l;
        }
    }
    return nullptr;
}

struct BtfFree {
    void operator()(btf *b) const { btf__free(b); }
};
using Btf = std::unique_ptr<btf, BtfFree>;

// Every BPF object the build made (build/bpf/*.bpf.o), by path.
std::vector<std::string> bpf_objects() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto &e :
         std::filesystem::directory_iterator(std::string(PPINJECT_BINARY_DIR) + "/bpf", ec)) {
        std::string p = e.path().string();
        if (p.ends_with(".bpf.o")) {
            out.push_back(p);
        }
    }
    return out;
}

// Compares BTF struct `t` (named `name`) with its row of the table, both ways.
void expect_same_layout(const btf *b, const btf_type *t, const Layout &want) {
    EXPECT_EQ(t->size, want.size) << want.name << ": sizeof";
    std::set<std::string> in_btf;
    const btf_member *m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); i++) {
        std::string field = btf__name_by_offset(b, m[i].name_off);
        in_btf.insert(field);
        const Field *row = nullptr;
        for (const auto &f : want.fields) {
            if (f.name == field) {
                row = &f;
            }
        }
        if (!row) {
            ADD_FAILURE() << want.name << "." << field << " is in the BTF but not in the table";
            continue;
        }
        EXPECT_EQ(btf_member_bitfield_size(t, i), 0u) << want.name << "." << field;
        EXPECT_EQ(btf_member_bit_offset(t, i), row->offset * 8) << want.name << "." << field;
        long long size = btf__resolve_size(b, m[i].type);
        EXPECT_EQ(size, static_cast<long long>(row->size)) << want.name << "." << field;
    }
    for (const auto &f : want.fields) {
        EXPECT_TRUE(in_btf.count(f.name)) << want.name << "." << f.name << " not in the BTF";
    }
}

TEST(BpfLayout, SharedStructsMatchEveryObjectsBtf) {
    std::vector<std::string> objects = bpf_objects();
    for (const char *expected : {"/udp.bpf.o", "/tcp.bpf.o"}) {
        bool found = false;
        for (const auto &o : objects) {
            found = found || o.ends_with(expected);
        }
        EXPECT_TRUE(found) << expected << " not built in " << PPINJECT_BINARY_DIR << "/bpf";
    }
    std::set<std::string> checked;
    for (const auto &obj : objects) {
        SCOPED_TRACE(obj);
        Btf b(btf__parse_elf(obj.c_str(), nullptr));
        ASSERT_TRUE(b) << "parse BTF of " << obj << ": " << std::strerror(errno);
        for (__u32 id = 1; id < btf__type_cnt(b.get()); id++) {
            const btf_type *t = btf__type_by_id(b.get(), id);
            std::string name = btf__name_by_offset(b.get(), t->name_off);
            if (!(btf_is_struct(t) || btf_is_union(t)) || !name.starts_with("pp_")) {
                continue;
            }
            const Layout *want = find_layout(name);
            if (!want) {
                ADD_FAILURE() << name << " is in the BTF but not in the table";
                continue;
            }
            EXPECT_TRUE(btf_is_struct(t)) << name << " is a union in the BTF";
            expect_same_layout(b.get(), t, *want);
            checked.insert(name);
        }
    }
    // A row no object has would be checked against nothing.
    for (const auto &l : shared_structs()) {
        EXPECT_TRUE(checked.count(l.name)) << l.name << " is in no object's BTF";
    }
}

// A struct added to the header that no BPF program uses yet has no BTF to be found by;
// it still belongs in the table.
TEST(BpfLayout, EveryHeaderStructIsInTheTable) {
    std::string path = std::string(PPINJECT_SOURCE_DIR) + "/bpf/ppinject.h";
    std::ifstream in(path);
    ASSERT_TRUE(in) << path;
    std::stringstream text;
    text << in.rdbuf();
    std::string header = text.str();
    std::regex def(R"(struct\s+(pp_\w+)\s*\{)");
    int structs = 0;
    for (std::sregex_iterator it(header.begin(), header.end(), def), end; it != end; ++it) {
        structs++;
        EXPECT_TRUE(find_layout((*it)[1])) << (*it)[1] << " is in ppinject.h but not in the table";
    }
    EXPECT_EQ(structs, static_cast<int>(shared_structs().size()))
        << "the pattern above missed a definition, or the table has a row of no header struct";
}

}  // namespace
