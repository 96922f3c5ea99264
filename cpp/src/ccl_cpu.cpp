// Run-based connected-component labelling on the CPU (see ramh/detail/ccl.hpp).
#include <algorithm>
#include <cstring>
#include <numeric>

#include "ramh/detail/ccl.hpp"

namespace ramh::detail {

namespace {
constexpr uint64_t kAllOnes = 0x0101010101010101ull;

inline uint64_t load8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace

int32_t RunLabeler::find(int32_t i) {
  // Path halving; parents only ever point to lower indices, so the root is the component's first run.
  while (parent_[i] != i) {
    parent_[i] = parent_[parent_[i]];
    i = parent_[i];
  }
  return i;
}

void RunLabeler::unite(int32_t a, int32_t b) {
  a = find(a);
  b = find(b);
  if (a < b)
    parent_[b] = a;
  else if (b < a)
    parent_[a] = b;
}

int RunLabeler::label(int height, int width, Connectivity conn, const RowFn& fill_row) {
  runs_.clear();
  row_.resize(static_cast<std::size_t>(width));
  uint8_t* row = row_.data();
  for (int y = 0; y < height; ++y) {
    fill_row(y, row);
    // Skip uniform stretches 8 bytes at a time: rows of anatomical masks are mostly long runs of 0s or 1s.
    int x = 0;
    while (x < width) {
      while (x + 8 <= width && load8(row + x) == 0) x += 8;
      while (x < width && !row[x]) ++x;
      if (x >= width) break;
      const int start = x;
      while (x + 8 <= width && load8(row + x) == kAllOnes) x += 8;
      while (x < width && row[x]) ++x;
      runs_.push_back({y, start, x, 0});
    }
  }
  return label_runs(conn);
}

int RunLabeler::label_runs(Connectivity conn) {
  const auto n = static_cast<int32_t>(runs_.size());
  parent_.resize(static_cast<std::size_t>(n));
  std::iota(parent_.begin(), parent_.end(), 0);
  // Two runs of adjacent rows touch when their column ranges overlap (4-connectivity) or overlap after widening by
  // one pixel (8-connectivity: diagonal contact).
  const int32_t slack = conn == Connectivity::Eight ? 1 : 0;
  int32_t prev_begin = 0, prev_end = 0, prev_y = -2;
  int32_t i = 0;
  while (i < n) {
    const int32_t y = runs_[i].y, cur_begin = i;
    while (i < n && runs_[i].y == y) ++i;
    const int32_t cur_end = i;
    if (prev_y == y - 1) {
      // Merge of two sorted interval lists: advancing the run that ends first visits every touching pair.
      int32_t p = prev_begin, c = cur_begin;
      while (p < prev_end && c < cur_end) {
        const Run& a = runs_[p];
        const Run& b = runs_[c];
        if (a.x0 < b.x1 + slack && b.x0 < a.x1 + slack) unite(p, c);
        if (a.x1 < b.x1)
          ++p;
        else
          ++c;
      }
    }
    prev_begin = cur_begin;
    prev_end = cur_end;
    prev_y = y;
  }
  // Flatten: roots are first runs in raster order, so numbering roots in index order numbers components in raster
  // order of their first pixel.
  areas_.clear();
  first_run_.clear();
  int32_t next = 0;
  for (int32_t k = 0; k < n; ++k) {
    Run& r = runs_[k];
    if (parent_[k] == k) {
      r.label = next++;
      areas_.push_back(0);
      first_run_.push_back(k);
    } else {
      r.label = runs_[find(k)].label;
    }
    areas_[r.label] += r.x1 - r.x0;
  }
  return next;
}

void find_holes(const std::vector<Run>& set, RunLabeler& work, std::vector<Run>& holes) {
  holes.clear();
  if (set.empty()) return;
  // Holes lie strictly inside the bounding box B of S. A complement region touching B's edge reaches the pixels
  // outside B (all in the complement), which reach the plane's border in a straight line; so within B the holes are
  // exactly the complement components that do not touch B's edge. Labelling only B keeps the cost O(runs in B).
  int32_t bx0 = set.front().x0, bx1 = set.front().x1;
  for (const Run& r : set) {
    bx0 = std::min(bx0, r.x0);
    bx1 = std::max(bx1, r.x1);
  }
  const int32_t by0 = set.front().y, by1 = set.back().y + 1;
  if (bx1 - bx0 < 3 || by1 - by0 < 3) return;  // no room for a pixel strictly inside

  auto& bg = work.runs();
  bg.clear();
  std::vector<int32_t> left_of;  // index in `set` of the run just left of each complement run (-1 at B's edge)
  std::size_t k = 0;
  for (int32_t y = by0; y < by1; ++y) {
    int32_t start = bx0, left = -1;
    for (; k < set.size() && set[k].y == y; ++k) {
      if (set[k].x0 > start) {
        bg.push_back({y, start, set[k].x0, 0});
        left_of.push_back(left);
      }
      start = set[k].x1;
      left = static_cast<int32_t>(k);
    }
    if (start < bx1) {
      bg.push_back({y, start, bx1, 0});
      left_of.push_back(left);
    }
  }
  const int n_regions = work.label_runs(Connectivity::Four);
  std::vector<uint8_t> open(static_cast<std::size_t>(n_regions), 0);
  for (const Run& r : bg)
    if (r.y == by0 || r.y == by1 - 1 || r.x0 == bx0 || r.x1 == bx1) open[r.label] = 1;
  std::vector<int32_t> owner(static_cast<std::size_t>(n_regions), -1);
  for (int q = 0; q < n_regions; ++q)
    if (!open[q]) owner[q] = left_of[work.first_run()[q]];
  for (const Run& r : bg)
    if (!open[r.label]) holes.push_back({r.y, r.x0, r.x1, owner[r.label]});
}

}  // namespace ramh::detail
