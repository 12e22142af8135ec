#include "backend/backend.h"
#include "winnow/error.h"

#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace winnow {

void parse_device(const std::string& s, BackendOptions& o) {
    if (s == "cpu") {
        o.device = Device::cpu;
        return;
    }
    if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
        o.device = Device::cuda;
        o.cuda_device = 0;
        if (s.size() > 5) {
            const std::string n = s.substr(5);
            if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos)
                throw Error(ErrorKind::invalid_argument, "--device: '" + s + "' is not cpu, cuda or cuda:N");
            o.cuda_device = std::stoi(n);
        }
        return;
    }
    throw Error(ErrorKind::invalid_argument, "--device: '" + s + "' is not cpu, cuda or cuda:N");
}

std::unique_ptr<Backend> make_backend(const BackendOptions& o) {
    if (o.device == Device::cpu) return make_cpu_backend(o.threads, o.dot);
#ifdef WINNOW_HAVE_CUDA
    return make_cuda_backend(o.cuda_device);
#else
    throw Error(ErrorKind::unsupported, "this winnow was built without CUDA (configure with nvcc on the PATH, WINNOW_CUDA=ON)");
#endif
}

} // namespace winnow
