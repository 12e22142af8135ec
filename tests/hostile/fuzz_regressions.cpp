// Inputs the libFuzzer campaign (tests/fuzz, scripts/fuzz.sh) found crashing a loader, kept as regression tests in
// the normal build: tests/hostile/fuzz_inputs/<fuzz target>/<input> is given to the loader that target fuzzes, in the
// same form (multi-file inputs joined by fuzz::kFileSep), and every one must be refused with winnow::Error: no other
// exception, no crash. Under scripts/fuzz.sh the same files also replay through the sanitized targets
// (build-fuzz/tests/fuzz/<target> FILE).
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "../fuzz/fuzz_util.h"
#include "../fuzz/tiny_model.h"
#include "io/gguf.h"
#include "model/model.h"
#include "sparse/pattern.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace winnow;

namespace {

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The loaders each fuzz target exercises, given the input's bytes, in the target's order; the first refusal propagates.
const std::map<std::string, std::function<void(const std::string&)>>& loaders() {
    static const std::map<std::string, std::function<void(const std::string&)>> m = {
        {"fuzz_gguf",
         [](const std::string& bytes) {
             const auto path = (fuzz::scratch_dir() / "model.gguf").string();
             fuzz::write_file(path, bytes);
             auto f = io::GgufFile::open(path);
             auto tok = Tokenizer::from_gguf(*f);
             for (int32_t id : tok->encode("Hello world", true, true))
                 if (id < 0 || id >= tok->n_vocab()) throw std::out_of_range("encode gave id " + std::to_string(id) + " outside the vocabulary");
             (void)LoadedModel::load(path);
         }},
        {"fuzz_hf_config",
         [](const std::string& bytes) {
             const auto dir = fuzz::fresh_dir("config");
             fuzz::write_file(dir / "model.safetensors", fuzz::tiny_llama_safetensors());
             fuzz::write_file(dir / "config.json", bytes);
             (void)LoadedModel::load(dir.string());
         }},
        {"fuzz_sparse_pattern",
         [](const std::string& bytes) {
             const auto path = (fuzz::scratch_dir() / "model.sparse.json").string();
             fuzz::write_file(path, bytes);
             (void)sparse::SparsePattern::load(path);
         }},
        {"fuzz_tokenizer_json",
         [](const std::string& bytes) {
             const auto parts = fuzz::split(bytes, fuzz::kFileSep, 2);
             const auto dir = fuzz::fresh_dir("tokenizer");
             fuzz::write_file(dir / "tokenizer.json", parts[0]);
             if (parts.size() > 1) fuzz::write_file(dir / "tokenizer_config.json", parts[1]);
             (void)Tokenizer::from_hf_dir(dir.string());
         }},
    };
    return m;
}

} // namespace

TEST(FuzzRegressions, EveryFoundInputIsRefusedWithWinnowError) {
    const fs::path root = fs::path(WINNOW_SOURCE_DIR) / "tests/hostile/fuzz_inputs";
    ASSERT_TRUE(fs::is_directory(root)) << root;
    int n = 0;
    for (const auto& target : fs::directory_iterator(root)) {
        const std::string name = target.path().filename().string();
        ASSERT_TRUE(loaders().count(name)) << "no loader for the inputs of " << name;
        for (const auto& input : fs::directory_iterator(target.path())) {
            SCOPED_TRACE(input.path().string());
            const std::string bytes = read_bytes(input.path());
            try {
                loaders().at(name)(bytes);
                ADD_FAILURE() << "accepted";
            } catch (const winnow::Error& e) {
                EXPECT_NE(std::string(e.what()), "");
            } catch (const std::exception& e) {
                ADD_FAILURE() << "escaped as " << typeid(e).name() << ": " << e.what();
            }
            ++n;
        }
    }
    EXPECT_GT(n, 0) << "no regression inputs found under " << root;
}
