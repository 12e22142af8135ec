// safetensors reader on valid and corrupted files: clear errors naming the file and field, never a crash.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "winnow/error.h"

namespace {

namespace fs = std::filesystem;
using winnow::Error;
using winnow::ErrorKind;
using winnow::io::SafetensorsFile;
using winnow::io::SafetensorsModel;

fs::path temp_dir() {
    auto d = fs::temp_directory_path() / "winnow-st-tests";
    fs::create_directories(d);
    return d;
}

std::string write_raw(const std::string& name, const std::string& header, size_t data_bytes, int64_t length_override = -1) {
    const auto path = (temp_dir() / name).string();
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << std::string(data_bytes, '\0');
    return path;
}

std::string write_json(const std::string& name, const nlohmann::json& header, size_t data_bytes) { return write_raw(name, header.dump(), data_bytes); }

void expect_format_error(const std::string& path, const std::string& words) {
    try {
        SafetensorsFile::open(path);
        FAIL() << path << ": expected an error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::format) << e.what();
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find(words), std::string::npos) << "expected '" << words << "' in: " << msg;
    }
}

nlohmann::json tensor(const char* dtype, std::vector<uint64_t> shape, uint64_t begin, uint64_t end) {
    return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

TEST(SafetensorsValid, ParsesTypesShapesAndMetadata) {
    nlohmann::json h = {{"__metadata__", {{"format", "pt"}}},
                        {"a", tensor("F32", {2, 3}, 0, 24)}, {"b", tensor("F16", {4}, 24, 32)}, {"c", tensor("BF16", {2}, 32, 36)},
                        {"scalar", tensor("F32", {}, 36, 40)}, {"empty", tensor("F32", {0, 5}, 40, 40)}};
    auto f = SafetensorsFile::open(write_json("valid.safetensors", h, 40));
    EXPECT_EQ(f->metadata().at("format"), "pt");
    ASSERT_EQ(f->tensors().size(), 5u);
    EXPECT_EQ(f->tensors().at("a").shape, (std::vector<uint64_t>{2, 3}));
    EXPECT_EQ(f->tensors().at("b").dtype, winnow::io::StDtype::F16);
    EXPECT_EQ(f->tensors().at("c").data - f->tensors().at("a").data, 32);
    EXPECT_EQ(f->tensors().at("scalar").n_elements(), 1u);
    EXPECT_EQ(f->tensors().at("empty").nbytes, 0u);
}

TEST(SafetensorsValid, ShardedDirectory) {
    const auto dir = temp_dir() / "sharded";
    fs::create_directories(dir);
    write_raw("sharded/m1.safetensors", nlohmann::json({{"x", tensor("F32", {2}, 0, 8)}}).dump(), 8);
    write_raw("sharded/m2.safetensors", nlohmann::json({{"y", tensor("F32", {1}, 0, 4)}}).dump(), 4);
    std::ofstream(dir / "model.safetensors.index.json") << R"({"metadata":{"total_size":12},"weight_map":{"x":"m1.safetensors","y":"m2.safetensors"}})";
    auto m = SafetensorsModel::open(dir.string());
    ASSERT_NE(m->find("x"), nullptr);
    ASSERT_NE(m->find("y"), nullptr);
    EXPECT_EQ(m->find("z"), nullptr);
}

TEST(SafetensorsValid, IndexNamingAMissingTensorFails) {
    const auto dir = temp_dir() / "bad_index";
    fs::create_directories(dir);
    write_raw("bad_index/m1.safetensors", nlohmann::json({{"x", tensor("F32", {2}, 0, 8)}}).dump(), 8);
    std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map":{"x":"m1.safetensors","ghost":"m1.safetensors"}})";
    EXPECT_THROW(SafetensorsModel::open(dir.string()), Error);
}

TEST(SafetensorsValid, IndexWithPathInShardNameFails) {
    const auto dir = temp_dir() / "escape_index";
    fs::create_directories(dir);
    std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map":{"x":"../m1.safetensors"}})";
    EXPECT_THROW(SafetensorsModel::open(dir.string()), Error);
}

TEST(SafetensorsValid, DirectoryWithoutWeightsIsAnIoError) {
    const auto dir = temp_dir() / "nothing";
    fs::create_directories(dir);
    try {
        SafetensorsModel::open(dir.string());
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::io);
    }
}

TEST(SafetensorsCorrupt, ShorterThanLengthField) {
    const auto path = (temp_dir() / "tiny.safetensors").string();
    std::ofstream(path, std::ios::binary) << "abc";
    expect_format_error(path, "header length");
}
TEST(SafetensorsCorrupt, HeaderLengthOverLimit) { expect_format_error(write_raw("huge.safetensors", "{}", 0, 200'000'000), "100 MB"); }
TEST(SafetensorsCorrupt, HeaderLengthPastEnd) { expect_format_error(write_raw("past.safetensors", "{}", 0, 4096), "past the end"); }
TEST(SafetensorsCorrupt, HeaderNotAnObject) { expect_format_error(write_raw("notobj.safetensors", "[1, 2, 3]", 0), "does not start with '{'"); }
TEST(SafetensorsCorrupt, InvalidJson) { expect_format_error(write_raw("badjson.safetensors", "{\"a\": {", 0), "invalid JSON"); }
TEST(SafetensorsCorrupt, DuplicateKey) {
    const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    expect_format_error(write_raw("dup.safetensors", h, 4), "duplicate key 'a'");
}
TEST(SafetensorsCorrupt, UnknownDtype) { expect_format_error(write_json("dtype.safetensors", {{"a", tensor("F7", {1}, 0, 4)}}, 4), "unknown dtype"); }
TEST(SafetensorsCorrupt, NegativeShape) {
    nlohmann::json h = {{"a", {{"dtype", "F32"}, {"shape", {-1}}, {"data_offsets", {0, 4}}}}};
    expect_format_error(write_json("negshape.safetensors", h, 4), "non-negative");
}
TEST(SafetensorsCorrupt, EndBeforeBegin) { expect_format_error(write_json("order.safetensors", {{"a", tensor("F32", {0}, 8, 4)}}, 8), "< begin"); }
TEST(SafetensorsCorrupt, SpanDisagreesWithShape) {
    expect_format_error(write_json("span.safetensors", {{"a", tensor("F32", {3}, 0, 8)}}, 8), "need 12");
}
TEST(SafetensorsCorrupt, DataPastBuffer) { expect_format_error(write_json("pastbuf.safetensors", {{"a", tensor("F32", {4}, 0, 16)}}, 8), "outside"); }
TEST(SafetensorsCorrupt, OverlappingTensors) {
    expect_format_error(write_json("overlap.safetensors", {{"a", tensor("F32", {2}, 0, 8)}, {"b", tensor("F32", {2}, 4, 12)}}, 12), "overlap");
}
TEST(SafetensorsCorrupt, HoleInBuffer) {
    expect_format_error(write_json("hole.safetensors", {{"a", tensor("F32", {1}, 0, 4)}, {"b", tensor("F32", {1}, 8, 12)}}, 12), "hole");
}
TEST(SafetensorsCorrupt, TrailingBytes) { expect_format_error(write_json("trailing.safetensors", {{"a", tensor("F32", {1}, 0, 4)}}, 12), "cover 4 bytes"); }
TEST(SafetensorsCorrupt, MetadataNotStrings) {
    expect_format_error(write_json("meta.safetensors", {{"__metadata__", {{"format", 1}}}}, 0), "__metadata__.format");
}
TEST(SafetensorsCorrupt, ShapeOverflows) {
    nlohmann::json h = {{"a", tensor("F32", {1ull << 40, 1ull << 40}, 0, 4)}};
    expect_format_error(write_json("overflow.safetensors", h, 4), "overflows");
}

} // namespace
