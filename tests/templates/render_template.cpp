// The C++ side of the jinja2 parity check (check_templates.py): reads a JSON file
//   {"template": "...", "bos_token": "...", "eos_token": "...", "kwargs": "<a JSON object's text, or absent>",
//    "cases": [{"messages": [{"role": "...", "content": "..."}, ...], "add_generation_prompt": true}, ...]}
// renders every case with winnow::render_chat and prints a JSON array with, per case, {"ok": true, "text": "..."}
// or {"ok": false, "error": "<the winnow::Error message>"}.
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "winnow/error.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: winnow_template_render CASES.json\n";
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) {
        std::cerr << "winnow_template_render: cannot open " << argv[1] << "\n";
        return 2;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    const auto input = nlohmann::json::parse(buf.str());
    winnow::ChatTemplate t;
    t.source = input.at("template").get<std::string>();
    t.bos_token = input.value("bos_token", "");
    t.eos_token = input.value("eos_token", "");
    t.kwargs_json = input.value("kwargs", "");
    nlohmann::json results = nlohmann::json::array();
    for (const auto& c : input.at("cases")) {
        std::vector<winnow::ChatMessage> messages;
        for (const auto& m : c.at("messages")) messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
        try {
            results.push_back({{"ok", true}, {"text", winnow::render_chat(t, messages, c.at("add_generation_prompt").get<bool>())}});
        } catch (const winnow::Error& e) {
            results.push_back({{"ok", false}, {"error", e.what()}});
        }
    }
    std::cout << results.dump() << "\n";
    return 0;
}
