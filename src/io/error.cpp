#include "winnow/error.h"

namespace winnow {

const char* to_string(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::io: return "io";
    case ErrorKind::format: return "format";
    case ErrorKind::unsupported: return "unsupported";
    case ErrorKind::invalid_argument: return "invalid argument";
    }
    return "unknown";
}

} // namespace winnow
