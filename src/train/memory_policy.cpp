#include "train/memory_policy.h"

#include <sstream>

#include "winnow/error.h"

namespace winnow::train {

namespace {
const char* name(AttentionPolicy a) { return a == AttentionPolicy::dense ? "dense" : a == AttentionPolicy::lse ? "lse" : "approx"; }
const char* name(LinearPolicy l) {
    switch (l) {
    case LinearPolicy::full: return "full";
    case LinearPolicy::asa1: return "asa1";
    case LinearPolicy::asa2: return "asa2";
    case LinearPolicy::asa3: return "asa3";
    case LinearPolicy::asa4: return "asa4";
    }
    return "?";
}
} // namespace

std::string MemoryPolicy::describe() const {
    std::string s = std::string("attention=") + name(attention);
    if (attention == AttentionPolicy::approx) s += ",m=" + std::to_string(approx_m);
    s += std::string(",linear=") + name(linear) + ",recompute=" + (recompute ? "on" : "off");
    if (checkpoint) s += ",checkpoint=on";
    return s;
}

MemoryPolicy MemoryPolicy::parse(const std::string& spec) {
    MemoryPolicy p;
    std::stringstream ss(spec);
    for (std::string item; std::getline(ss, item, ',');) {
        if (item.empty()) continue;
        const auto eq = item.find('=');
        const std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
        auto bad = [&] { return Error(ErrorKind::invalid_argument, "--policy: '" + item + "' is not one of attention=dense|lse|approx, m=N, linear=full|asa1..asa4, recompute=on|off, checkpoint=on|off"); };
        if (key == "attention") {
            if (value == "dense") p.attention = AttentionPolicy::dense;
            else if (value == "lse") p.attention = AttentionPolicy::lse;
            else if (value == "approx") p.attention = AttentionPolicy::approx;
            else throw bad();
        } else if (key == "m") {
            try { p.approx_m = std::stoi(value); } catch (const std::exception&) { throw bad(); }
            if (p.approx_m < 1 || p.approx_m > 1024) throw bad();
        } else if (key == "linear") {
            if (value == "full") p.linear = LinearPolicy::full;
            else if (value == "asa1") p.linear = LinearPolicy::asa1;
            else if (value == "asa2") p.linear = LinearPolicy::asa2;
            else if (value == "asa3") p.linear = LinearPolicy::asa3;
            else if (value == "asa4") p.linear = LinearPolicy::asa4;
            else throw bad();
        } else if (key == "recompute") {
            if (value == "on") p.recompute = true;
            else if (value == "off") p.recompute = false;
            else throw bad();
        } else if (key == "checkpoint") {
            if (value == "on") p.checkpoint = true;
            else if (value == "off") p.checkpoint = false;
            else throw bad();
        } else {
            throw bad();
        }
    }
    return p;
}

} // namespace winnow::train
