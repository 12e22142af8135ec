#pragma once
// Shared command-line parsing for the winnow subcommands (Boost.Program_options).
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "winnow/error.h"

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

// The items of a list option's value ("1024,2048,4096"), split as std::getline splits them: an empty value gives none,
// a trailing separator adds nothing, an empty item between two separators is kept (for the caller to refuse).
inline std::vector<std::string> list_items(const std::string& value, char separator = ',') {
    std::stringstream ss(value);
    std::vector<std::string> items;
    for (std::string item; std::getline(ss, item, separator);) items.push_back(item);
    return items;
}

// The numbers of a comma-separated list option's value, each of which must satisfy in_range; an item that is no number
// or is out of range throws winnow::Error "OPTION: 'ITEM' is not EXPECTED" (expected: e.g. "in (0, 1]").
template <class InRange>
std::vector<double> number_list(const std::string& value, const std::string& option, const std::string& expected, InRange in_range) {
    std::vector<double> numbers;
    for (const std::string& item : list_items(value)) {
        double v = 0;
        bool parsed = true;
        try { v = std::stod(item); } catch (const std::exception&) { parsed = false; }
        if (!parsed || !in_range(v)) throw Error(ErrorKind::invalid_argument, option + ": '" + item + "' is not " + expected);
        numbers.push_back(v);
    }
    return numbers;
}

} // namespace winnow::cli
