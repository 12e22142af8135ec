#pragma once
// Line input for `winnow chat` that Ctrl-C does not end. A SIGINT handler (installed without SA_RESTART) only sets
// an atomic flag: a generation callback that checks it stops the current answer, and a read waiting at the prompt
// (in 100 ms polls, so a signal that lands between two checks is never lost) returns `interrupted` (the terminal has
// already discarded the half-typed line). Ctrl-D on an empty line, or the end of a piped stdin, is `eof`. Reads raw
// bytes from fd 0, so a non-terminal stdin gives its turns line by line.
#include <atomic>
#include <string>

namespace winnow::cli {

// Set by SIGINT; whoever acts on it clears it.
extern std::atomic<bool> g_interrupted;

// Installs the SIGINT handler (once).
void install_interrupt_handler();

enum class ReadResult { line, eof, interrupted };

class LineReader {
public:
    // One line without its newline (a last line without one counts too).
    ReadResult read(std::string& line);

private:
    std::string pending_;
    bool eof_ = false;
};

} // namespace winnow::cli
