// GgufFile::open on hand-built GGUF images (tests/unit/gguf_writer.h), in the spirit of llama.cpp's
// tests/test-gguf.cpp: valid v2/v3 files parse with the right metadata, shapes and data pointers, and every
// corrupt file gives a winnow::Error of kind `format` whose message names the file and the offending field,
// never a crash, a hang or an out-of-bounds read.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gguf_writer.h"
#include "test_scratch_dir.h"
#include "io/gguf.h"
#include "winnow/error.h"

namespace {

namespace fs = std::filesystem;
namespace vt = winnow::test::gguf_type;
namespace gt = winnow::test::ggml_type_id;
using winnow::Error;
using winnow::ErrorKind;
using winnow::GgmlType;
using winnow::io::GgufFile;
using winnow::io::GgufValueType;
using winnow::test::GgufWriter;

// Each test gets its own temp directory, removed afterwards.
class GgufTempDirTest : public winnow::test::ScratchDirTest {
protected:

    std::string write(const GgufWriter& w, const std::string& name = "model.gguf", size_t prefix = SIZE_MAX) {
        const fs::path path = dir_ / name;
        w.write(path, prefix);
        return path.string();
    }

    // Opens `path` and expects a format error whose message names the file and contains every one of `words`.
    static void expect_format_error_at(const std::string& path, std::initializer_list<std::string> words) {
        try {
            GgufFile::open(path);
            ADD_FAILURE() << "expected a format error, but '" << path << "' opened";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(e.kind(), ErrorKind::format) << msg;
            EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
            for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "expected '" << w << "' in: " << msg;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "threw a non-winnow exception: " << e.what();
        }
    }
    void expect_format_error(const GgufWriter& w, std::initializer_list<std::string> words) {
        expect_format_error_at(write(w), words);
    }

};

class GgufReader : public GgufTempDirTest {};
class GgufReaderCorrupt : public GgufTempDirTest {};

// ---------------------------------------------------------------------------------------------------------
// A valid file: every scalar metadata type, a string, three arrays and two tensors
//   "vec"   F32  ne {4, 2}  = 32 bytes  at data offset 0
//   "quant" Q8_0 ne {32, 3} = 3 blocks x 34 = 102 bytes at the next aligned offset
// The file ends exactly at the last tensor byte, so every shorter prefix of it is truncated.
struct ValidFile {
    GgufWriter w;
    uint64_t data_offset = 0;
    uint64_t quant_offset = 0;
    std::vector<uint8_t> vec_bytes, quant_bytes;
};

ValidFile valid_file(uint32_t version = 3, uint32_t alignment = 0) {
    ValidFile v;
    const uint32_t align = alignment ? alignment : 32;
    v.quant_offset = (32 + align - 1) / align * align;
    for (int k = 0; k < 8; ++k) {
        const float x = 0.5f * static_cast<float>(k) - 1.0f;
        const auto* p = reinterpret_cast<const uint8_t*>(&x);
        v.vec_bytes.insert(v.vec_bytes.end(), p, p + 4);
    }
    for (int k = 0; k < 102; ++k) v.quant_bytes.push_back(static_cast<uint8_t>(k * 7 + 3));

    GgufWriter& w = v.w;
    w.header(2, alignment ? 17 : 16, version);
    if (alignment) w.kv_u32("general.alignment", alignment);
    w.kv_str("general.architecture", "llama")
        .kv_u8("test.u8", 200)
        .kv_i8("test.i8", -100)
        .kv_u16("test.u16", 60000)
        .kv_i16("test.i16", 12345)
        .kv_u32("test.u32", 4000000000u)
        .kv_i32("test.i32", -2000000000)
        .kv_u64("test.u64", (1ull << 40) + 7)
        .kv_i64("test.i64", -(1ll << 40))
        .kv_f32("test.f32", 0.5f)
        .kv_f64("test.f64", -2.25)
        .kv_bool("test.true", 1)
        .kv_bool("test.false", 0)
        .kv_str_array("test.strings", {"a", "", "\xc3\xbcn\xc3\xaf"})
        .kv_i32_array("test.ints", {1, -2, 3})
        .kv_f32_array("test.floats", {0.25f, -1.0f});
    w.tensor_info("vec", {4, 2}, gt::F32, 0).tensor_info("quant", {32, 3}, gt::Q8_0, v.quant_offset);
    w.align(align);
    v.data_offset = w.size();
    w.raw(v.vec_bytes).align(align).raw(v.quant_bytes);
    return v;
}

// === valid files =========================================================================================

TEST_F(GgufReader, ValidV3FileParsesMetadataOfEveryType) {
    auto f = GgufFile::open(write(valid_file().w));
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->metadata().size(), 16u);
    EXPECT_EQ(f->find("test.u8")->type, GgufValueType::u8);
    EXPECT_EQ(f->find("test.u8")->u, 200u);
    EXPECT_EQ(f->find("test.i8")->type, GgufValueType::i8);
    EXPECT_EQ(f->find("test.i8")->i, -100);
    EXPECT_EQ(f->find("test.u16")->u, 60000u);
    EXPECT_EQ(f->find("test.i16")->i, 12345);
    EXPECT_EQ(f->find("test.u32")->u, 4000000000u);
    EXPECT_EQ(f->find("test.i32")->i, -2000000000);
    EXPECT_EQ(f->find("test.u64")->u, (1ull << 40) + 7);
    EXPECT_EQ(f->find("test.i64")->i, -(1ll << 40));
    EXPECT_EQ(f->find("test.f32")->type, GgufValueType::f32);
    EXPECT_EQ(f->find("test.f32")->f, 0.5);
    EXPECT_EQ(f->find("test.f64")->type, GgufValueType::f64);
    EXPECT_EQ(f->find("test.f64")->f, -2.25);
    EXPECT_EQ(f->find("test.true")->type, GgufValueType::boolean);
    EXPECT_EQ(f->get_bool("test.true"), true);
    EXPECT_EQ(f->get_bool("test.false"), false);
    EXPECT_EQ(f->find("general.architecture")->s, "llama");
    const auto* strings = f->find("test.strings");
    ASSERT_NE(strings, nullptr);
    EXPECT_EQ(strings->type, GgufValueType::array);
    EXPECT_EQ(strings->elem_type, GgufValueType::string);
    EXPECT_EQ(f->get_string_array("test.strings"), (std::vector<std::string>{"a", "", "\xc3\xbcn\xc3\xaf"}));
    EXPECT_EQ(f->get_int_array("test.ints"), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(f->get_float_array("test.floats"), (std::vector<double>{0.25, -1.0}));
    EXPECT_EQ(f->find("no.such.key"), nullptr);
}

TEST_F(GgufReader, ValidV3FileHasTensorShapesOffsetsAndDataPointers) {
    const ValidFile v = valid_file();
    auto f = GgufFile::open(write(v.w));
    EXPECT_EQ(f->alignment(), 32u);
    EXPECT_EQ(f->data_offset(), v.data_offset);
    EXPECT_EQ(f->data_offset() % 32, 0u);
    ASSERT_EQ(f->tensors().size(), 2u);
    EXPECT_EQ(f->tensors()[0].name, "vec"); // file order is kept
    EXPECT_EQ(f->tensors()[1].name, "quant");

    const auto* vec = f->find_tensor("vec");
    ASSERT_NE(vec, nullptr);
    EXPECT_EQ(vec->type, GgmlType::F32);
    EXPECT_EQ(vec->n_dims, 2u);
    EXPECT_EQ(vec->ne[0], 4u);
    EXPECT_EQ(vec->ne[1], 2u);
    EXPECT_EQ(vec->ne[2], 1u);
    EXPECT_EQ(vec->ne[3], 1u);
    EXPECT_EQ(vec->n_elements(), 8u);
    EXPECT_EQ(vec->offset, 0u);
    EXPECT_EQ(vec->nbytes, 32u);
    ASSERT_NE(vec->data, nullptr);
    EXPECT_EQ(std::memcmp(vec->data, v.vec_bytes.data(), 32), 0);
    float x2;
    std::memcpy(&x2, vec->data + 8, 4);
    EXPECT_EQ(x2, 0.0f);

    const auto* quant = f->find_tensor("quant");
    ASSERT_NE(quant, nullptr);
    EXPECT_EQ(quant->type, GgmlType::Q8_0);
    EXPECT_EQ(quant->n_dims, 2u);
    EXPECT_EQ(quant->ne[0], 32u);
    EXPECT_EQ(quant->ne[1], 3u);
    EXPECT_EQ(quant->n_elements(), 96u);
    EXPECT_EQ(quant->offset, 32u);
    EXPECT_EQ(quant->nbytes, 102u);
    EXPECT_EQ(quant->data - vec->data, 32);
    EXPECT_EQ(std::memcmp(quant->data, v.quant_bytes.data(), 102), 0);

    EXPECT_EQ(f->find_tensor("missing"), nullptr);
}

TEST_F(GgufReader, Version2Parses) {
    auto f = GgufFile::open(write(valid_file(2).w));
    EXPECT_EQ(f->version(), 2u);
    EXPECT_EQ(f->tensors().size(), 2u);
    EXPECT_EQ(f->require_string("general.architecture"), "llama");
}

TEST_F(GgufReader, DefaultAlignmentIs32) {
    GgufWriter w;
    w.header(2, 0).tensor_info("a", {2}, gt::F32, 0).tensor_info("b", {2}, gt::F32, 32).align(32).zeros(32 + 8);
    auto f = GgufFile::open(write(w));
    EXPECT_EQ(f->alignment(), 32u);
    EXPECT_EQ(f->data_offset(), 96u); // header 24 + two infos of 33 bytes = 90, aligned up to 96
    EXPECT_EQ(f->find_tensor("b")->data - f->find_tensor("a")->data, 32);
}

TEST_F(GgufReader, CustomAlignment64) {
    const ValidFile v = valid_file(3, 64);
    auto f = GgufFile::open(write(v.w));
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->data_offset() % 64, 0u);
    EXPECT_EQ(f->data_offset(), v.data_offset);
    EXPECT_EQ(f->find_tensor("quant")->offset, 64u);
    EXPECT_EQ(f->find_tensor("quant")->data - f->find_tensor("vec")->data, 64);
    EXPECT_EQ(std::memcmp(f->find_tensor("quant")->data, v.quant_bytes.data(), 102), 0);
}

TEST_F(GgufReader, CustomAlignment64RejectsOffsetsAlignedOnlyTo32) {
    GgufWriter w;
    w.header(2, 1).kv_u32("general.alignment", 64).tensor_info("a", {8}, gt::F32, 0).tensor_info("b", {8}, gt::F32, 32);
    w.align(64).zeros(64 + 32);
    expect_format_error(w, {"tensor 'b'", "offset 32", "expected 64"});
}

TEST_F(GgufReader, MetadataOnlyFileWithoutDataSectionParses) {
    GgufWriter w;
    w.header(0, 1).kv_str("general.architecture", "llama"); // 0 tensors: nothing after the metadata, no padding
    auto f = GgufFile::open(write(w));
    EXPECT_TRUE(f->tensors().empty());
    EXPECT_EQ(f->require_string("general.architecture"), "llama");
}

TEST_F(GgufReader, TensorNameOf63BytesIsAccepted) {
    const std::string name(63, 'n');
    GgufWriter w;
    w.header(1, 0).tensor_info(name, {8}, gt::F32, 0).align().zeros(32);
    auto f = GgufFile::open(write(w));
    ASSERT_NE(f->find_tensor(name), nullptr);
}

TEST_F(GgufReader, EmptyTensorIsAccepted) {
    GgufWriter w;
    w.header(2, 0).tensor_info("empty", {0, 4}, gt::F32, 0).tensor_info("b", {8}, gt::F32, 0).align().zeros(32);
    auto f = GgufFile::open(write(w));
    EXPECT_EQ(f->find_tensor("empty")->nbytes, 0u);
    EXPECT_EQ(f->find_tensor("b")->offset, 0u);
}

TEST_F(GgufReader, MissingFileIsAnIoError) {
    const std::string path = (dir_ / "does-not-exist.gguf").string();
    try {
        GgufFile::open(path);
        FAIL() << "expected an io error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::io) << e.what();
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}

TEST_F(GgufReader, DirectoryIsAnIoError) {
    try {
        GgufFile::open(dir_.string());
        FAIL() << "expected an io error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::io) << e.what();
    }
}

// === typed accessors =====================================================================================

TEST_F(GgufReader, GetUintConvertsEveryNonNegativeInteger) {
    auto f = GgufFile::open(write(valid_file().w));
    EXPECT_EQ(f->get_uint("test.u8"), 200u);
    EXPECT_EQ(f->get_uint("test.u16"), 60000u);
    EXPECT_EQ(f->get_uint("test.u32"), 4000000000u);
    EXPECT_EQ(f->get_uint("test.u64"), (1ull << 40) + 7);
    EXPECT_EQ(f->get_uint("test.i16"), 12345u); // signed but non-negative
    EXPECT_EQ(f->require_uint("test.u8"), 200u);
    EXPECT_FALSE(f->get_uint("no.such.key").has_value());
}

TEST_F(GgufReader, GetUintOfNegativeIntegerThrowsNamingTheKey) {
    const std::string path = write(valid_file().w);
    auto f = GgufFile::open(path);
    for (const char* key : {"test.i8", "test.i32", "test.i64"}) {
        try {
            f->get_uint(key);
            ADD_FAILURE() << key << ": expected an error";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(e.kind(), ErrorKind::format);
            EXPECT_NE(msg.find(std::string("metadata key '") + key + "'"), std::string::npos) << msg;
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
        }
    }
}

TEST_F(GgufReader, WrongTypeThrowsNamingTheKeyAndTheType) {
    const std::string path = write(valid_file().w);
    auto f = GgufFile::open(path);
    auto expect_wrong_type = [&](auto&& call, const std::string& key, const std::string& found) {
        try {
            call();
            ADD_FAILURE() << key << ": expected an error";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(e.kind(), ErrorKind::format) << msg;
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            EXPECT_NE(msg.find("metadata key '" + key + "'"), std::string::npos) << msg;
            EXPECT_NE(msg.find(found), std::string::npos) << msg;
        }
    };
    expect_wrong_type([&] { f->get_uint("general.architecture"); }, "general.architecture", "string");
    expect_wrong_type([&] { f->require_uint("test.f32"); }, "test.f32", "f32");
    expect_wrong_type([&] { f->get_float("test.u32"); }, "test.u32", "u32");
    expect_wrong_type([&] { f->require_float("test.strings"); }, "test.strings", "array");
    expect_wrong_type([&] { f->get_string("test.u8"); }, "test.u8", "u8");
    expect_wrong_type([&] { f->require_string("test.true"); }, "test.true", "bool");
    expect_wrong_type([&] { f->get_bool("test.u8"); }, "test.u8", "u8");
    expect_wrong_type([&] { f->get_string_array("test.ints"); }, "test.ints", "array of strings");
    expect_wrong_type([&] { f->get_string_array("general.architecture"); }, "general.architecture", "array of strings");
    expect_wrong_type([&] { f->get_float_array("test.strings"); }, "test.strings", "array of floats");
    expect_wrong_type([&] { f->get_int_array("test.strings"); }, "test.strings", "array of integers");
    expect_wrong_type([&] { f->get_int_array("test.u32"); }, "test.u32", "array of integers");
}

TEST_F(GgufReader, GetFloatAndGetStringReturnValues) {
    auto f = GgufFile::open(write(valid_file().w));
    EXPECT_EQ(f->get_float("test.f32"), 0.5);
    EXPECT_EQ(f->get_float("test.f64"), -2.25);
    EXPECT_EQ(f->require_float("test.f64"), -2.25);
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    EXPECT_FALSE(f->get_float("no.such.key").has_value());
    EXPECT_FALSE(f->get_string("no.such.key").has_value());
    EXPECT_FALSE(f->get_bool("no.such.key").has_value());
    EXPECT_TRUE(f->get_string_array("no.such.key").empty());
    EXPECT_TRUE(f->get_float_array("no.such.key").empty());
    EXPECT_TRUE(f->get_int_array("no.such.key").empty());
}

TEST_F(GgufReader, MissingRequiredKeyThrowsNamingTheKey) {
    const std::string path = write(valid_file().w);
    auto f = GgufFile::open(path);
    auto expect_missing = [&](auto&& call) {
        try {
            call();
            ADD_FAILURE() << "expected an error";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(e.kind(), ErrorKind::format) << msg;
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            EXPECT_NE(msg.find("metadata key 'llama.block_count'"), std::string::npos) << msg;
            EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
        }
    };
    expect_missing([&] { f->require_uint("llama.block_count"); });
    expect_missing([&] { f->require_float("llama.block_count"); });
    expect_missing([&] { f->require_string("llama.block_count"); });
}

// === corrupt files: header ===============================================================================

TEST_F(GgufReaderCorrupt, EmptyFile) { expect_format_error(GgufWriter{}, {"magic", "0 bytes"}); }

TEST_F(GgufReaderCorrupt, ShorterThanMagic) {
    GgufWriter w;
    w.raw("GGU", 3);
    expect_format_error(w, {"magic", "3 bytes"});
}

TEST_F(GgufReaderCorrupt, ShorterThanHeader) {
    GgufWriter w;
    w.raw("GGUF", 4).u32(3).u32(0); // tensor_count is cut in half
    expect_format_error(w, {"tensor_count", "truncated"});
}

TEST_F(GgufReaderCorrupt, HeaderWithoutKvCount) {
    GgufWriter w;
    w.raw("GGUF", 4).u32(3).u64(0);
    expect_format_error(w, {"metadata_kv_count", "truncated"});
}

TEST_F(GgufReaderCorrupt, BadMagic) {
    GgufWriter w;
    w.header(0, 0, 3, "GGML");
    expect_format_error(w, {"magic", "GGUF"});
}

TEST_F(GgufReaderCorrupt, MagicInWrongByteOrder) {
    GgufWriter w;
    w.header(0, 0, 3, "FUGG");
    expect_format_error(w, {"magic"});
}

TEST_F(GgufReaderCorrupt, Version0) {
    GgufWriter w;
    w.header(0, 0, 0);
    expect_format_error(w, {"version", "0"});
}

TEST_F(GgufReaderCorrupt, Version1) {
    GgufWriter w;
    w.header(0, 0, 1);
    expect_format_error(w, {"version", "v1"});
}

TEST_F(GgufReaderCorrupt, Version4FromTheFuture) {
    GgufWriter w;
    w.header(0, 0, 4);
    expect_format_error(w, {"version", "4"});
}

TEST_F(GgufReaderCorrupt, BigEndianVersion) {
    GgufWriter w;
    w.header(0, 0, 0x03000000); // version 3 written big-endian
    expect_format_error(w, {"version", "big-endian"});
}

TEST_F(GgufReaderCorrupt, AbsurdTensorCount) {
    GgufWriter w;
    w.header(UINT64_MAX / 2, 0).zeros(64);
    expect_format_error(w, {"tensor_count"});
}

TEST_F(GgufReaderCorrupt, TensorCountJustTooLargeForFile) {
    GgufWriter w;
    w.header(3, 0).tensor_info("a", {8}, gt::F32, 0).tensor_info("b", {8}, gt::F32, 32); // 66 bytes < 3 x 32
    expect_format_error(w, {"tensor_count"});
}

TEST_F(GgufReaderCorrupt, AbsurdKvCount) {
    GgufWriter w;
    w.header(0, 1ull << 60).kv_u32("a", 1);
    expect_format_error(w, {"kv_count"});
}

// === corrupt files: metadata =============================================================================

TEST_F(GgufReaderCorrupt, KeyLengthPastEndOfFile) {
    GgufWriter w;
    w.header(0, 1).str_with_length(1000, "abc").zeros(8);
    expect_format_error(w, {"metadata entry #0 key", "string length 1000"});
}

TEST_F(GgufReaderCorrupt, KeyLengthNearUint64Max) {
    GgufWriter w;
    w.header(0, 1).str_with_length(UINT64_MAX - 3, "abc").zeros(8);
    expect_format_error(w, {"metadata entry #0 key", "string length"});
}

TEST_F(GgufReaderCorrupt, EmptyKey) {
    GgufWriter w;
    w.header(0, 1).kv_u32("", 1);
    expect_format_error(w, {"metadata entry #0", "empty key"});
}

TEST_F(GgufReaderCorrupt, FewerMetadataEntriesThanKvCount) {
    GgufWriter w;
    w.header(0, 3).kv_u32("a", 1).kv_str("b", std::string(40, 'x')); // entry #2 is missing
    expect_format_error(w, {"metadata entry #2", "truncated"});
}

TEST_F(GgufReaderCorrupt, UnknownValueType) {
    GgufWriter w;
    w.header(0, 1).key("k", 13).u32(0);
    expect_format_error(w, {"'k'", "unknown value type 13"});
}

TEST_F(GgufReaderCorrupt, ValueTypeUint32Max) {
    GgufWriter w;
    w.header(0, 1).key("k", UINT32_MAX).u32(0);
    expect_format_error(w, {"'k'", "unknown value type"});
}

TEST_F(GgufReaderCorrupt, ScalarValueTruncated) {
    GgufWriter w;
    w.header(0, 1).key("k", vt::u64).u32(7); // 4 of the 8 value bytes
    expect_format_error(w, {"metadata key 'k'", "truncated"});
}

TEST_F(GgufReaderCorrupt, StringValueLengthPastEndOfFile) {
    GgufWriter w;
    w.header(0, 1).key("s", vt::string).str_with_length(1ull << 40, "abc");
    expect_format_error(w, {"metadata key 's'", "string length"});
}

TEST_F(GgufReaderCorrupt, BoolValue2) {
    GgufWriter w;
    w.header(0, 1).kv_bool("flag", 2);
    expect_format_error(w, {"metadata key 'flag'", "bool"});
}

TEST_F(GgufReaderCorrupt, BoolArrayElement2) {
    GgufWriter w;
    w.header(0, 1).kv_array_header("flags", vt::boolean, 3).u8(1).u8(0).u8(2);
    expect_format_error(w, {"metadata key 'flags'", "bool"});
}

TEST_F(GgufReaderCorrupt, DuplicateKey) {
    GgufWriter w;
    w.header(0, 2).kv_u32("dup", 1).kv_str("dup", "two");
    expect_format_error(w, {"metadata key 'dup'", "duplicate"});
}

TEST_F(GgufReaderCorrupt, UnknownArrayElementType) {
    GgufWriter w;
    w.header(0, 1).kv_array_header("arr", 13, 0);
    expect_format_error(w, {"metadata key 'arr'", "element type 13"});
}

TEST_F(GgufReaderCorrupt, ArrayCountLargerThanFile) {
    GgufWriter w;
    w.header(0, 1).kv_array_header("arr", vt::i32, 1000000).put<int32_t>(1).put<int32_t>(2);
    expect_format_error(w, {"metadata key 'arr'", "array count 1000000"});
}

TEST_F(GgufReaderCorrupt, ArrayCountNearUint64Max) {
    GgufWriter w;
    w.header(0, 1).kv_array_header("arr", vt::u8, UINT64_MAX).u8(1); // must not try to reserve 2^64 elements
    expect_format_error(w, {"metadata key 'arr'", "array count"});
}

TEST_F(GgufReaderCorrupt, StringArrayElementLengthPastEndOfFile) {
    GgufWriter w;
    w.header(0, 1).kv_array_header("arr", vt::string, 2).str("a").str_with_length(1000, "b");
    expect_format_error(w, {"metadata key 'arr'", "string length 1000"});
}

TEST_F(GgufReaderCorrupt, NestedArraysTooDeep) {
    GgufWriter w;
    w.header(0, 1).key("deep", vt::array);
    for (int k = 0; k < 64; ++k) w.u32(vt::array).u64(1); // an array of an array of ... 64 levels
    w.u32(vt::u8).u64(1).u8(7);
    expect_format_error(w, {"metadata key 'deep'", "nested"});
}

// === corrupt files: general.alignment ====================================================================

TEST_F(GgufReaderCorrupt, AlignmentNotPowerOfTwo) {
    GgufWriter w;
    w.header(0, 1).kv_u32("general.alignment", 48);
    expect_format_error(w, {"metadata key 'general.alignment'", "48", "power of two"});
}

TEST_F(GgufReaderCorrupt, AlignmentZero) {
    GgufWriter w;
    w.header(0, 1).kv_u32("general.alignment", 0);
    expect_format_error(w, {"metadata key 'general.alignment'", "power of two"});
}

TEST_F(GgufReaderCorrupt, AlignmentStoredAsU64) {
    GgufWriter w;
    w.header(0, 1).kv_u64("general.alignment", 32);
    expect_format_error(w, {"metadata key 'general.alignment'", "u32", "u64"});
}

TEST_F(GgufReaderCorrupt, AlignmentStoredAsString) {
    GgufWriter w;
    w.header(0, 1).kv_str("general.alignment", "32");
    expect_format_error(w, {"metadata key 'general.alignment'", "string"});
}

// === corrupt files: tensor infos =========================================================================

TEST_F(GgufReaderCorrupt, TensorNameLengthPastEndOfFile) {
    GgufWriter w;
    w.header(1, 0).str_with_length(1ull << 50, "t").zeros(40);
    expect_format_error(w, {"tensor #0 name", "string length"});
}

TEST_F(GgufReaderCorrupt, TensorNameLongerThan63Bytes) {
    const std::string name(64, 'x');
    GgufWriter w;
    w.header(1, 0).tensor_info(name, {8}, gt::F32, 0).align().zeros(32);
    expect_format_error(w, {"tensor '" + name + "'", "name longer than 63"});
}

TEST_F(GgufReaderCorrupt, DuplicateTensorName) {
    GgufWriter w;
    w.header(2, 0).tensor_info("t", {8}, gt::F32, 0).tensor_info("t", {8}, gt::F32, 32).align().zeros(64);
    expect_format_error(w, {"tensor 't'", "duplicate"});
}

TEST_F(GgufReaderCorrupt, ZeroDims) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {}, gt::F32, 0).align().zeros(32);
    expect_format_error(w, {"tensor 't'", "n_dims 0"});
}

TEST_F(GgufReaderCorrupt, FiveDims) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {1, 1, 1, 1, 1}, gt::F32, 0).align().zeros(32);
    expect_format_error(w, {"tensor 't'", "n_dims 5"});
}

TEST_F(GgufReaderCorrupt, RetiredGgmlType4) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {32}, 4, 0).align().zeros(128); // 4 was Q4_2, removed from ggml
    expect_format_error(w, {"tensor 't'", "unknown ggml type 4"});
}

TEST_F(GgufReaderCorrupt, UnknownGgmlType1000) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {32}, 1000, 0).align().zeros(128);
    expect_format_error(w, {"tensor 't'", "unknown ggml type 1000"});
}

TEST_F(GgufReaderCorrupt, RowNotMultipleOfQ4_1BlockSize) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {33, 2}, gt::Q4_1, 0).align().zeros(128);
    expect_format_error(w, {"tensor 't'", "ne[0] = 33", "Q4_1", "block size 32"});
}

TEST_F(GgufReaderCorrupt, NegativeDimension) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {4, 1ull << 63}, gt::F32, 0).align().zeros(32); // ne[1] = INT64_MIN
    expect_format_error(w, {"tensor 't'", "ne[1]", "negative"});
}

TEST_F(GgufReaderCorrupt, ElementCountOverflows64Bits) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {1ull << 32, 1ull << 32}, gt::F32, 0).align().zeros(32);
    expect_format_error(w, {"tensor 't'", "overflows"});
}

TEST_F(GgufReaderCorrupt, ElementCountExceedsInt64) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {1ull << 62, 2}, gt::F32, 0).align().zeros(32); // 2^63 elements
    expect_format_error(w, {"tensor 't'", "overflows"});
}

TEST_F(GgufReaderCorrupt, ByteSizeOverflows64Bits) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {1ull << 62}, gt::F64, 0).align().zeros(32); // 2^62 x 8 bytes
    expect_format_error(w, {"tensor 't'", "overflows"});
}

TEST_F(GgufReaderCorrupt, RunningDataOffsetOverflows64Bits) {
    // Each Q8_0 tensor holds (2^63 - 32) / 32 x 34 bytes, just over half of 2^64: the second one's end wraps.
    const uint64_t ne0 = (1ull << 63) - 32;
    const uint64_t padded = ((ne0 / 32 * 34) + 31) / 32 * 32;
    GgufWriter w;
    w.header(2, 0).tensor_info("a", {ne0}, gt::Q8_0, 0).tensor_info("b", {ne0}, gt::Q8_0, padded).align().zeros(32);
    expect_format_error(w, {"tensor 'b'", "overflows"});
}

TEST_F(GgufReaderCorrupt, FirstTensorOffsetNotZero) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {8}, gt::F32, 32).align().zeros(64);
    expect_format_error(w, {"tensor 't'", "offset 32", "expected 0"});
}

TEST_F(GgufReaderCorrupt, MisalignedTensorOffset) {
    GgufWriter w;
    w.header(2, 0).tensor_info("a", {8}, gt::F32, 0).tensor_info("b", {8}, gt::F32, 36).align().zeros(96);
    expect_format_error(w, {"tensor 'b'", "offset 36", "expected 32"});
}

TEST_F(GgufReaderCorrupt, TensorOffsetSkipsAheadOfRunningOffset) {
    GgufWriter w;
    w.header(2, 0).tensor_info("a", {8}, gt::F32, 0).tensor_info("b", {8}, gt::F32, 64).align().zeros(96);
    expect_format_error(w, {"tensor 'b'", "offset 64", "expected 32"});
}

TEST_F(GgufReaderCorrupt, TensorsOverlap) {
    GgufWriter w;
    w.header(2, 0).tensor_info("a", {8}, gt::F32, 0).tensor_info("b", {8}, gt::F32, 0).align().zeros(64);
    expect_format_error(w, {"tensor 'b'", "offset 0", "expected 32"});
}

// === corrupt files: data section =========================================================================

TEST_F(GgufReaderCorrupt, TensorDataPastEndOfFile) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {64}, gt::F32, 0).align().zeros(100); // needs 256 bytes
    expect_format_error(w, {"tensor 't'", "outside", "truncated"});
}

TEST_F(GgufReaderCorrupt, SecondTensorDataPastEndOfFile) {
    GgufWriter w;
    w.header(2, 0).tensor_info("a", {8}, gt::F32, 0).tensor_info("b", {8}, gt::F32, 32).align().zeros(32 + 31);
    expect_format_error(w, {"tensor 'b'", "outside"});
}

TEST_F(GgufReaderCorrupt, FileEndsBeforeDataSection) {
    GgufWriter w;
    w.header(1, 0).tensor_info("t", {8}, gt::F32, 0); // 57 bytes; the data section would start at 64
    expect_format_error(w, {"data section", "past the end"});
}

TEST_F(GgufReaderCorrupt, TruncatedTensorInfo) {
    GgufWriter w;
    w.header(1, 0).str("t").u32(2).u64(8).u64(1).u32(gt::F32); // name, n_dims, ne[2], type; the offset is cut off
    expect_format_error(w, {"tensor 't' offset", "truncated"});
}

// Every proper prefix of a valid file must be rejected with an Error, never a crash or an out-of-bounds read.
TEST_F(GgufReaderCorrupt, EveryTruncationOfAValidFileIsRejected) {
    const ValidFile v = valid_file();
    ASSERT_NO_THROW(GgufFile::open(write(v.w, "full.gguf")));
    for (size_t n = 0; n < v.w.size(); ++n) {
        const std::string path = write(v.w, "prefix.gguf", n);
        try {
            GgufFile::open(path);
            ADD_FAILURE() << "a " << n << "-byte prefix of a " << v.w.size() << "-byte file opened";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(e.kind(), ErrorKind::format) << "prefix " << n << ": " << msg;
            EXPECT_NE(msg.find(path), std::string::npos) << "prefix " << n << ": " << msg;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "prefix " << n << ": non-winnow exception: " << e.what();
        }
    }
}

} // namespace
