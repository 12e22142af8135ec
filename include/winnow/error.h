#pragma once
// The one exception type winnow throws. The message names the file, the field and what was expected.
#include <stdexcept>
#include <string>

namespace winnow {

enum class ErrorKind {
    io,               // a file could not be opened, mapped or read
    format,           // a file is malformed: truncated, inconsistent, out of bounds
    unsupported,      // well-formed but uses something winnow does not implement
    invalid_argument, // a caller passed something invalid
};

const char* to_string(ErrorKind kind);

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_;
};

} // namespace winnow
