// The loss-curve PNG of `winnow finetune`: training loss (blue line) and validation loss (red points) against the
// step, with axes, five labelled ticks per axis and a caption, drawn into an RGB raster and encoded with zlib.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <zlib.h>

#include "io/atomic_file.h"
#include "train/finetune.h"
#include "winnow/error.h"

namespace winnow::train {

namespace {

struct Canvas {
    int w, h;
    std::vector<uint8_t> px; // RGB
    Canvas(int width, int height) : w(width), h(height), px(static_cast<size_t>(width) * height * 3, 255) {}
    void dot(int x, int y, std::array<uint8_t, 3> c) {
        if (x < 0 || y < 0 || x >= w || y >= h) return;
        uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
        p[0] = c[0], p[1] = c[1], p[2] = c[2];
    }
    void line(int x0, int y0, int x1, int y1, std::array<uint8_t, 3> c) { // Bresenham
        const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
        for (int err = dx + dy;;) {
            dot(x0, y0, c);
            if (x0 == x1 && y0 == y1) break;
            const int e2 = 2 * err;
            if (e2 >= dy) err += dy, x0 += sx;
            if (e2 <= dx) err += dx, y0 += sy;
        }
    }
    // 3 x 5 glyphs, scaled by 2
    void text(int x, int y, const std::string& s, std::array<uint8_t, 3> c) {
        static const std::pair<char, std::array<uint8_t, 5>> font[] = {
            {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}}, {'4', {5, 5, 7, 1, 1}},
            {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}}, {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}},
            {'.', {0, 0, 0, 0, 2}}, {'-', {0, 0, 7, 0, 0}}, {'A', {2, 5, 7, 5, 5}}, {'E', {7, 4, 7, 4, 7}}, {'I', {7, 2, 2, 2, 7}},
            {'L', {4, 4, 4, 4, 7}}, {'N', {6, 5, 5, 5, 5}}, {'O', {7, 5, 5, 5, 7}}, {'P', {7, 5, 7, 4, 4}}, {'R', {6, 5, 6, 5, 5}},
            {'S', {7, 4, 7, 1, 7}}, {'T', {7, 2, 2, 2, 2}}, {'V', {5, 5, 5, 5, 2}}, {'(', {1, 2, 2, 2, 1}}, {')', {4, 2, 2, 2, 4}},
        };
        for (char ch : s) {
            for (const auto& [g, rows] : font)
                if (g == ch)
                    for (int r = 0; r < 5; ++r)
                        for (int b = 0; b < 3; ++b)
                            if (rows[r] >> (2 - b) & 1)
                                for (int sy = 0; sy < 2; ++sy)
                                    for (int sx = 0; sx < 2; ++sx) dot(x + 2 * b + sx, y + 2 * r + sy, c);
            x += 8;
        }
    }
};

std::string fmt(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, std::fabs(v) >= 100 ? "%.0f" : std::fabs(v) >= 10 ? "%.1f" : "%.2f", v);
    return buf;
}

void put_chunk(std::string& png, const char* type, const std::string& data) {
    auto be32 = [&](uint32_t v) { for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<char>(v >> s & 0xff)); };
    be32(static_cast<uint32_t>(data.size()));
    std::string body = std::string(type, 4) + data;
    png += body;
    be32(static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

} // namespace

void write_loss_png(const std::string& path, const std::vector<StepRecord>& history) {
    Canvas c(800, 480);
    const int left = 70, right = 20, top = 30, bottom = 50, pw = c.w - left - right, ph = c.h - top - bottom;
    double lo = 1e300, hi = -1e300;
    int s0 = history.empty() ? 0 : history.front().step, s1 = history.empty() ? 1 : history.back().step;
    if (s1 == s0) s1 = s0 + 1;
    for (const auto& r : history) {
        lo = std::min(lo, r.loss), hi = std::max(hi, r.loss);
        if (!std::isnan(r.val_loss)) lo = std::min(lo, r.val_loss), hi = std::max(hi, r.val_loss);
    }
    if (!(hi > lo)) lo -= 0.5, hi += 0.5;
    const double pad = 0.05 * (hi - lo);
    lo -= pad, hi += pad;
    auto X = [&](double step) { return left + static_cast<int>(std::lround((step - s0) / (s1 - s0) * pw)); };
    auto Y = [&](double v) { return top + static_cast<int>(std::lround((hi - v) / (hi - lo) * ph)); };
    const std::array<uint8_t, 3> black{0, 0, 0}, grey{220, 220, 220}, blue{31, 119, 180}, red{214, 39, 40};
    for (int k = 0; k <= 4; ++k) {
        const double v = lo + (hi - lo) * k / 4;
        c.line(left, Y(v), left + pw, Y(v), grey);
        c.text(4, Y(v) - 5, fmt(v), black);
        const double s = s0 + (s1 - s0) * k / 4.0;
        c.line(X(s), top + ph, X(s), top + ph + 5, black);
        c.text(X(s) - 12, top + ph + 10, std::to_string(static_cast<long>(std::lround(s))), black);
    }
    c.line(left, top, left, top + ph, black);
    c.line(left, top + ph, left + pw, top + ph, black);
    for (size_t i = 1; i < history.size(); ++i) c.line(X(history[i - 1].step), Y(history[i - 1].loss), X(history[i].step), Y(history[i].loss), blue);
    int last_x = -1, last_y = -1;
    for (const auto& r : history) {
        if (std::isnan(r.val_loss)) continue;
        const int x = X(r.step), y = Y(r.val_loss);
        for (int dy = -2; dy <= 2; ++dy)
            for (int dx = -2; dx <= 2; ++dx) c.dot(x + dx, y + dy, red);
        if (last_x >= 0) c.line(last_x, last_y, x, y, red);
        last_x = x, last_y = y;
    }
    c.text(left + 10, 8, "LOSS (TRAIN", blue);
    c.text(left + 10 + 12 * 8, 8, "VAL)", red);
    c.text(left + pw / 2 - 16, c.h - 18, "STEP", black);

    std::string raw;
    raw.reserve(static_cast<size_t>(c.h) * (1 + c.w * 3));
    for (int y = 0; y < c.h; ++y) {
        raw.push_back(0); // filter: none
        raw.append(reinterpret_cast<const char*>(&c.px[static_cast<size_t>(y) * c.w * 3]), static_cast<size_t>(c.w) * 3);
    }
    uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
    std::string z(zlen, '\0');
    if (compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()), 9) != Z_OK)
        throw Error(ErrorKind::io, "cannot compress '" + path + "'");
    z.resize(zlen);
    std::string png = "\x89PNG\r\n\x1a\n";
    std::string ihdr;
    for (uint32_t v : {static_cast<uint32_t>(c.w), static_cast<uint32_t>(c.h)})
        for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<char>(v >> s & 0xff));
    ihdr += std::string("\x08\x02\x00\x00\x00", 5); // 8 bits, RGB, deflate, no filter, no interlace
    put_chunk(png, "IHDR", ihdr);
    put_chunk(png, "IDAT", z);
    put_chunk(png, "IEND", "");
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        out.write(png.data(), static_cast<std::streamsize>(png.size()));
        out.close();
        if (!out) throw Error(ErrorKind::io, "cannot write '" + tmp + "'");
    }
    io::commit_file(tmp, path);
}

} // namespace winnow::train
