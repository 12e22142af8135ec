#include "backend/tensor.h"

#include "winnow/error.h"

namespace winnow {

const char* to_string(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

bool is_tensor_type(GgmlType t) {
    return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::I32 || t == GgmlType::I8;
}

size_t tensor_type_size(GgmlType t) {
    switch (t) {
    case GgmlType::F32: case GgmlType::I32: return 4;
    case GgmlType::F16: case GgmlType::BF16: return 2;
    case GgmlType::I8: return 1;
    default: throw Error(ErrorKind::invalid_argument, std::string("a tensor cannot hold ") + ggml_type_name(t) + " elements");
    }
}

Tensor::Tensor(GgmlType type, Device device, int64_t rows, int64_t cols, std::shared_ptr<void> storage, void* data)
    : type_(type), device_(device), rows_(rows), cols_(cols), storage_(std::move(storage)), data_(data) {
    if (!is_tensor_type(type)) tensor_type_size(type); // throws with the type's name
    if (rows < 0 || cols < 0) throw Error(ErrorKind::invalid_argument, "tensor shape must not be negative");
}

Tensor Tensor::rows_view(int64_t first, int64_t count) const {
    if (first < 0 || count < 0 || first + count > rows_)
        throw Error(ErrorKind::invalid_argument, "rows [" + std::to_string(first) + ", " + std::to_string(first + count) + ") outside " + describe());
    return Tensor(type_, device_, count, cols_, storage_, static_cast<char*>(data_) + static_cast<size_t>(first) * row_bytes());
}

Tensor Tensor::prefix_view(int64_t rows, int64_t cols) const {
    if (rows < 0 || cols < 0 || rows * cols > numel())
        throw Error(ErrorKind::invalid_argument, "a [" + std::to_string(rows) + "x" + std::to_string(cols) + "] view does not fit in " + describe());
    return Tensor(type_, device_, rows, cols, storage_, data_);
}

std::string Tensor::describe() const {
    return std::string(ggml_type_name(type_)) + "[" + std::to_string(rows_) + "x" + std::to_string(cols_) + "]@" + to_string(device_);
}

} // namespace winnow
