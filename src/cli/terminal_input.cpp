#include "cli/terminal_input.h"

#include <cerrno>
#include <csignal>

#include <poll.h>
#include <unistd.h>

#include "winnow/error.h"

namespace winnow::cli {

std::atomic<bool> g_interrupted{false};

namespace {
extern "C" void on_sigint(int) { g_interrupted.store(true); }
} // namespace

void install_interrupt_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: a blocked read() returns EINTR, so the prompt sees the interrupt
    sigaction(SIGINT, &sa, nullptr);
}

ReadResult LineReader::read(std::string& line) {
    for (;;) {
        if (const size_t nl = pending_.find('\n'); nl != std::string::npos) {
            line = pending_.substr(0, nl);
            pending_.erase(0, nl + 1);
            return ReadResult::line;
        }
        if (eof_) {
            if (pending_.empty()) return ReadResult::eof;
            line.swap(pending_);
            pending_.clear();
            return ReadResult::line;
        }
        // A SIGINT that lands between the flag check and a blocking read() would not interrupt the read, so wait
        // for input in short polls and look at the flag between them.
        if (g_interrupted.exchange(false)) {
            pending_.clear();
            return ReadResult::interrupted;
        }
        pollfd in{0, POLLIN, 0};
        const int ready = ::poll(&in, 1, 100);
        if (ready == 0 || (ready < 0 && errno == EINTR)) continue;
        char buf[4096];
        const ssize_t n = ::read(0, buf, sizeof buf);
        if (n > 0) {
            pending_.append(buf, static_cast<size_t>(n));
        } else if (n == 0) {
            eof_ = true;
        } else if (errno == EINTR) {
            if (g_interrupted.exchange(false)) {
                pending_.clear();
                return ReadResult::interrupted;
            }
        } else {
            throw Error(ErrorKind::io, "reading stdin failed (errno " + std::to_string(errno) + ")");
        }
    }
}

} // namespace winnow::cli
