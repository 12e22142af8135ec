#pragma once
// A tensor as the decoder's backends see it: an element type, a 2-D shape [rows][cols] (row-major, contiguous), the
// device its memory lives on, and shared ownership of that memory. Views (rows_view) share the storage, so a KV
// cache layer or the last row of an activation is a cheap value. Memory is allocated by a Backend (alloc,
// place_readonly); a Tensor never copies data between devices by itself (Backend::upload / download do).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "io/ggml_type.h"
#include "winnow/params.h"

namespace winnow {

// Device: winnow/params.h (public).

// Element types a tensor may hold: F32, F16, BF16 (activations, KV cache), I32 (token ids) and I8 (raw bytes: the
// stored blocks of a quantized weight matrix).
bool is_tensor_type(GgmlType t);
size_t tensor_type_size(GgmlType t); // bytes per element; throws for a non-tensor type

class Tensor {
public:
    Tensor() = default;
    // `data` lies inside the memory `storage` keeps alive (storage may be null for borrowed memory).
    Tensor(GgmlType type, Device device, int64_t rows, int64_t cols, std::shared_ptr<void> storage, void* data);

    GgmlType type() const { return type_; }
    Device device() const { return device_; }
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    int64_t numel() const { return rows_ * cols_; }
    size_t row_bytes() const { return static_cast<size_t>(cols_) * tensor_type_size(type_); }
    size_t bytes() const { return static_cast<size_t>(rows_) * row_bytes(); }
    bool empty() const { return data_ == nullptr; }

    void* raw() const { return data_; }
    // Typed access; the caller knows the type (checked by the ops that call it).
    template <class T> T* data() const { return static_cast<T*>(data_); }
    float* f32() const { return data<float>(); }

    // Rows [first, first + count) as a tensor sharing this one's storage. Throws when out of range.
    Tensor rows_view(int64_t first, int64_t count) const;
    // The first rows * cols elements as a [rows][cols] tensor sharing this one's storage (a scratch reused for several
    // shapes). Throws when they do not fit.
    Tensor prefix_view(int64_t rows, int64_t cols) const;
    // "F32[3x576]@cpu", for messages.
    std::string describe() const;

private:
    GgmlType type_ = GgmlType::F32;
    Device device_ = Device::cpu;
    int64_t rows_ = 0, cols_ = 0;
    std::shared_ptr<void> storage_;
    void* data_ = nullptr;
};

} // namespace winnow
