#include "chat/jinja_limits.h"

namespace winnow::jinja {

void fail(ErrorKind kind, const std::string& what, int line) {
    std::string message = "chat template: " + what;
    if (line > 0) message += " at line " + std::to_string(line);
    for (char& c : message)
        if (c == '\n' || c == '\r') c = ' '; // one line, whatever a name or value in the message holds
    throw Error(kind, message);
}

} // namespace winnow::jinja
