#pragma once
// Shared command-line parsing for the winnow subcommands (Boost.Program_options).
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

namespace winnow::cli {

// Parses args into vm; prints the options and returns false when --help was given (the command then exits 0).
// Unknown or malformed options throw boost::program_options::error, which main() turns into a one-line message.
inline bool parse_options(const boost::program_options::options_description& opts, const std::vector<std::string>& args,
                          boost::program_options::variables_map& vm) {
    boost::program_options::store(boost::program_options::command_line_parser(args).options(opts).run(), vm);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return false;
    }
    boost::program_options::notify(vm);
    return true;
}

} // namespace winnow::cli
