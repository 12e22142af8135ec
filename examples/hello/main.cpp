// hello MODEL PROMPT [N]: N greedy tokens (default 16) through winnow's C++ API; prints the ids on stdout
// ("ids: 1 2 3") and streams the text to stderr.
#include <cstdio>
#include <iostream>
#include <string>

#include <winnow/winnow.h>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: hello MODEL PROMPT [N]\n";
        return 2;
    }
    try {
        winnow::Model model = winnow::Model::load(argv[1]);
        winnow::Session session = model.session();
        winnow::GenerateOptions opt;
        opt.max_tokens = argc > 3 ? std::stoi(argv[3]) : 16;
        opt.ignore_eos = true;
        const winnow::GenerateResult r = session.generate(argv[2], opt, [](std::string_view piece) {
            std::cerr << piece;
            return true;
        });
        std::cout << "ids:";
        for (int32_t id : r.output_ids) std::cout << ' ' << id;
        std::cout << "\n";
    } catch (const winnow::Error& e) {
        std::cerr << "hello: " << e.what() << "\n";
        return 1;
    }
}
