#pragma once
// A gtest fixture base that gives each test its own empty directory under the system's temp directory, named after
// the suite, the test and the process, and removes it afterwards.
#include <filesystem>
#include <string>
#include <system_error>
#include <unistd.h>

#include <gtest/gtest.h>

namespace winnow::test {

class ScratchDirTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = std::filesystem::temp_directory_path() /
               ("winnow-" + std::string(info->test_suite_name()) + "-" + info->name() + "-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    std::filesystem::path dir_;
};

} // namespace winnow::test
