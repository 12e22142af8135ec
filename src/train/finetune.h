#pragma once
// The fine-tuning loop behind `winnow finetune`: data, model, AdamW, validation every K steps, atomic checkpoints
// every S steps and at the end, the loss history as CSV, and exact resumption from the last checkpoint.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "train/adamw.h"
#include "train/memory_policy.h"

namespace winnow::train {

struct FinetuneOptions {
    std::string model_path;  // a GGUF model (on resume the checkpoint in out_dir is the model)
    std::string data_path;   // UTF-8 text
    std::string out_dir;     // checkpoint.gguf, loss.csv, model.gguf (final, without optimizer state), loss.png
    bool resume = false;
    int steps = 100, seq = 64, batch = 4;
    int val_every = 25, val_windows = 8, save_every = 50;
    double val_fraction = 0.1;
    uint64_t seed = 1;
    AdamWConfig adam;        // total_steps is set from `steps`
    MemoryPolicy policy;
    int stop_after = -1;     // testing: stop after this step WITHOUT saving, as if the process were killed
    bool write_files = true; // false: no checkpoints, CSV or PNG (benchmarks)
};

struct StepRecord {
    int step = 0;            // 1-based: the optimizer steps taken
    double loss = 0, lr = 0, grad_norm = 0, seconds = 0, tokens_per_second = 0;
    double val_loss = std::numeric_limits<double>::quiet_NaN(); // on validation steps
};

struct FinetuneResult {
    std::vector<StepRecord> history; // every step from 1, including those before a resume (from loss.csv)
    int first_step = 0;              // the step this run started from (0, or the checkpoint's step)
    size_t saved_bytes_per_layer = 0, params = 0;
    size_t live_layer_bytes = 0;     // per-layer checkpointing: the one live layer's tensors (0 otherwise)
    double final_val_loss = 0; // validation loss after the last step
    std::string data_hash;
};

using ProgressFn = std::function<void(const StepRecord&, const FinetuneOptions&)>;

// Throws winnow::Error on bad options, data or files (a one-line message naming what is wrong).
FinetuneResult run_finetune(FinetuneOptions options, const ProgressFn& progress = {});

// loss.csv rows (step,loss,val_loss,lr,grad_norm,tokens_per_second), written atomically.
void write_loss_csv(const std::string& path, const std::vector<StepRecord>& history);
std::vector<StepRecord> read_loss_csv(const std::string& path);
// A line plot of training loss (and validation points) as PNG, written atomically.
void write_loss_png(const std::string& path, const std::vector<StepRecord>& history);

} // namespace winnow::train
