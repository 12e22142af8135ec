// GGUF reader on valid and hand-corrupted files (in the spirit of llama.cpp's tests/test-gguf.cpp): every corrupt
// file gives a winnow::Error of kind `format` naming the file and the field; nothing crashes or reads out of bounds.
#include <gtest/gtest.h>

#include "gguf_builder.h"
#include "io/gguf.h"
#include "winnow/error.h"

namespace {

using winnow::Error;
using winnow::ErrorKind;
using winnow::io::GgufFile;
using winnow::test::GgufBuilder;

// A valid v3 file: 3 metadata entries, two tensors (F32 [4], Q8_0 [32 x 2]).
GgufBuilder valid(uint32_t version = 3) {
    GgufBuilder b;
    b.header(2, 3, version).kv_str("general.architecture", "llama").kv_u32("answer", 42).kv_str_array("names", {"a", "bc"});
    b.tensor("vec", {4}, 0, 0).tensor("mat", {32, 2}, 8, 32);
    b.align().zeros(32).zeros(68);
    return b;
}

void expect_format_error(const GgufBuilder& b, const std::string& name, const std::string& field_words) {
    const std::string path = b.write(name + ".gguf");
    try {
        GgufFile::open(path);
        FAIL() << name << ": expected a format error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::format) << e.what();
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
        EXPECT_NE(msg.find(field_words), std::string::npos) << "message does not name '" << field_words << "': " << msg;
    }
}

TEST(GgufValid, ParsesMetadataAndTensors) {
    auto f = GgufFile::open(valid().write("valid.gguf"));
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), 32u);
    EXPECT_EQ(f->require_string("general.architecture"), "llama");
    EXPECT_EQ(f->require_uint("answer"), 42u);
    EXPECT_EQ(f->get_string_array("names"), (std::vector<std::string>{"a", "bc"}));
    ASSERT_EQ(f->tensors().size(), 2u);
    const auto* mat = f->find_tensor("mat");
    ASSERT_NE(mat, nullptr);
    EXPECT_EQ(mat->nbytes, 68u);
    EXPECT_EQ(mat->ne[0], 32u);
    EXPECT_EQ(mat->ne[1], 2u);
    EXPECT_EQ(mat->data - f->find_tensor("vec")->data, 32);
}

TEST(GgufValid, Version2Parses) { EXPECT_EQ(GgufFile::open(valid(2).write("v2.gguf"))->version(), 2u); }

TEST(GgufValid, CustomAlignment) {
    GgufBuilder b;
    b.header(2, 1).kv_u32("general.alignment", 64).tensor("a", {4}, 0, 0).tensor("b", {4}, 0, 64).align(64).zeros(64 + 16);
    auto f = GgufFile::open(b.write("align64.gguf"));
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->data_offset() % 64, 0u);
}

TEST(GgufValid, TypedAccessorsCheckTypes) {
    auto f = GgufFile::open(valid().write("typed.gguf"));
    EXPECT_THROW(f->require_string("answer"), Error);
    EXPECT_THROW(f->require_uint("general.architecture"), Error);
    try {
        f->require_uint("missing.key");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("missing.key"), std::string::npos);
    }
    EXPECT_FALSE(f->get_uint("missing.key").has_value());
}

TEST(GgufCorrupt, EmptyFile) { expect_format_error(GgufBuilder{}, "empty", "magic"); }
TEST(GgufCorrupt, ShorterThanHeader) {
    GgufBuilder b;
    b.raw("GGUF", 4).put<uint32_t>(3).put<uint32_t>(0);
    expect_format_error(b, "short_header", "tensor_count");
}
TEST(GgufCorrupt, BadMagic) { GgufBuilder b; b.header(0, 0, 3, "GGML"); expect_format_error(b, "bad_magic", "magic"); }
TEST(GgufCorrupt, Version1) { GgufBuilder b; b.header(0, 0, 1); expect_format_error(b, "v1", "version"); }
TEST(GgufCorrupt, FutureVersion) { GgufBuilder b; b.header(0, 0, 4); expect_format_error(b, "v4", "version"); }
TEST(GgufCorrupt, BigEndianVersion) { GgufBuilder b; b.header(0, 0, 0x03000000); expect_format_error(b, "big_endian", "big-endian"); }
TEST(GgufCorrupt, AbsurdTensorCount) { GgufBuilder b; b.header(UINT64_MAX / 2, 0); expect_format_error(b, "tensor_count", "tensor_count"); }
TEST(GgufCorrupt, AbsurdKvCount) { GgufBuilder b; b.header(0, 1ull << 60); expect_format_error(b, "kv_count", "metadata_kv_count"); }
TEST(GgufCorrupt, KeyLengthPastEnd) {
    GgufBuilder b;
    b.header(0, 1).put<uint64_t>(1000).raw("abc", 3).zeros(16);
    expect_format_error(b, "key_len", "string length");
}
TEST(GgufCorrupt, EmptyKey) { GgufBuilder b; b.header(0, 1).kv_u32("", 1); expect_format_error(b, "empty_key", "empty key"); }
TEST(GgufCorrupt, UnknownValueType) {
    GgufBuilder b;
    b.header(0, 1).str("k").put<uint32_t>(13).put<uint32_t>(0).zeros(8);
    expect_format_error(b, "value_type", "unknown value type");
}
TEST(GgufCorrupt, UnknownArrayElementType) {
    GgufBuilder b;
    b.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(99).put<uint64_t>(1).zeros(8);
    expect_format_error(b, "array_type", "unknown array element type");
}
TEST(GgufCorrupt, ArrayCountLargerThanFile) {
    GgufBuilder b;
    b.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(1ull << 40).zeros(16);
    expect_format_error(b, "array_count", "array count");
}
TEST(GgufCorrupt, ArraysNestedTooDeep) {
    GgufBuilder b;
    b.header(0, 1).str("k");
    b.put<uint32_t>(9);
    for (int i = 0; i < 6; ++i) b.put<uint32_t>(9).put<uint64_t>(1);
    b.put<uint32_t>(4).put<uint64_t>(1).put<uint32_t>(7);
    expect_format_error(b, "nested", "nested deeper");
}
TEST(GgufCorrupt, BoolNotZeroOrOne) { GgufBuilder b; b.header(0, 1).kv_bool("flag", 2); expect_format_error(b, "bool", "neither 0 nor 1"); }
TEST(GgufCorrupt, DuplicateKey) {
    GgufBuilder b;
    b.header(0, 2).kv_u32("same", 1).kv_u32("same", 2);
    expect_format_error(b, "dup_key", "duplicate key");
}
TEST(GgufCorrupt, AlignmentNotPowerOfTwo) { GgufBuilder b; b.header(0, 1).kv_u32("general.alignment", 48); expect_format_error(b, "align48", "power of two"); }
TEST(GgufCorrupt, AlignmentZero) { GgufBuilder b; b.header(0, 1).kv_u32("general.alignment", 0); expect_format_error(b, "align0", "power of two"); }
TEST(GgufCorrupt, AlignmentWrongType) {
    GgufBuilder b;
    b.header(0, 1).kv_u64("general.alignment", 32);
    expect_format_error(b, "align_type", "general.alignment");
}
TEST(GgufCorrupt, TensorNameTooLong) {
    GgufBuilder b;
    b.header(1, 0).tensor(std::string(64, 'x'), {4}, 0, 0).align().zeros(16);
    expect_format_error(b, "long_name", "name longer");
}
TEST(GgufCorrupt, DuplicateTensorName) {
    GgufBuilder b;
    b.header(2, 0).tensor("t", {4}, 0, 0).tensor("t", {4}, 0, 32).align().zeros(64);
    expect_format_error(b, "dup_tensor", "duplicate tensor name");
}
TEST(GgufCorrupt, ZeroDims) { GgufBuilder b; b.header(1, 0).tensor("t", {}, 0, 0).align().zeros(16); expect_format_error(b, "dims0", "n_dims"); }
TEST(GgufCorrupt, FiveDims) {
    GgufBuilder b;
    b.header(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).align().zeros(16);
    expect_format_error(b, "dims5", "n_dims");
}
TEST(GgufCorrupt, RetiredTypeId) { GgufBuilder b; b.header(1, 0).tensor("t", {32}, 4, 0).align().zeros(32); expect_format_error(b, "type4", "unknown ggml type"); }
TEST(GgufCorrupt, UnknownTypeId) { GgufBuilder b; b.header(1, 0).tensor("t", {32}, 1000, 0).align().zeros(32); expect_format_error(b, "type1000", "unknown ggml type"); }
TEST(GgufCorrupt, RowNotMultipleOfBlock) {
    GgufBuilder b;
    b.header(1, 0).tensor("t", {30, 2}, 3, 0).align().zeros(64);
    expect_format_error(b, "block", "not a multiple");
}
TEST(GgufCorrupt, NegativeDimension) {
    GgufBuilder b;
    b.header(1, 0).tensor("t", {static_cast<uint64_t>(-4)}, 0, 0).align().zeros(16);
    expect_format_error(b, "negative", "negative");
}
TEST(GgufCorrupt, ShapeOverflows) {
    GgufBuilder b;
    b.header(1, 0).tensor("t", {1ull << 32, 1ull << 32, 4}, 0, 0).align().zeros(16);
    expect_format_error(b, "overflow", "overflows");
}
TEST(GgufCorrupt, MisalignedOffset) {
    GgufBuilder b;
    b.header(2, 0).tensor("a", {4}, 0, 0).tensor("b", {4}, 0, 16).align().zeros(64);
    expect_format_error(b, "misaligned", "expected 32");
}
TEST(GgufCorrupt, OffsetOutOfOrder) {
    GgufBuilder b;
    b.header(2, 0).tensor("a", {4}, 0, 32).tensor("b", {4}, 0, 0).align().zeros(64);
    expect_format_error(b, "order", "data offset");
}
TEST(GgufCorrupt, DataPastEndOfFile) {
    GgufBuilder b;
    b.header(1, 0).tensor("big", {1024}, 0, 0).align().zeros(100);
    expect_format_error(b, "truncated_data", "outside");
}
TEST(GgufCorrupt, DataSectionMissing) {
    GgufBuilder b;
    b.header(1, 0).tensor("t", {4}, 0, 0); // the file ends right after the tensor infos
    expect_format_error(b, "no_data", "data section");
}

// Every prefix of a valid file must be rejected cleanly (and never read past its end: run under ASan to check).
TEST(GgufCorrupt, EveryTruncationIsRejected) {
    const GgufBuilder full = valid();
    for (size_t n = 0; n < full.bytes.size(); ++n) {
        GgufBuilder b;
        b.bytes.assign(full.bytes.begin(), full.bytes.begin() + static_cast<std::ptrdiff_t>(n));
        const std::string path = b.write("prefix.gguf");
        EXPECT_THROW(GgufFile::open(path), Error) << "prefix of " << n << " bytes was accepted";
    }
    EXPECT_NO_THROW(GgufFile::open(full.write("full.gguf")));
}

TEST(GgufCorrupt, MissingFileIsAnIoError) {
    try {
        GgufFile::open("/nonexistent/dir/model.gguf");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::io);
    }
}

} // namespace
