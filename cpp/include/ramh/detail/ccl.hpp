// ramh/detail/ccl.hpp — connected-component labelling on the CPU, shared by the postprocess and quantify families.
//
// Internal (namespace ramh::detail); the CUDA counterpart is kernels/ccl.cuh. The labeller works on runs (maximal
// horizontal segments of foreground pixels): one raster pass extracts the runs of each row and unites them with the
// overlapping runs of the row above in a union-find over run indices (root = lowest index). Runs are far fewer than
// pixels for anatomical masks, so labelling, statistics and mask writing all cost O(runs) after the one pass that
// reads the pixels.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace ramh::detail {

// The CPU twins parallelise (OpenMP) only from this many input values on (~5 ms of work for one thread): a
// parallel region costs a thread wake-up and a barrier, and on a loaded machine the barrier waits until the other
// thread gets a time slice, which can cost more than small jobs take on one thread.
constexpr int64_t kParallelMinValues = int64_t{1} << 23;

enum class Connectivity : int { Four = 4, Eight = 8 };

// Pixels [x0, x1) of row y. After labelling, `label` is the run's component; for find_holes' output, the run of
// the set that encloses the hole (see there).
struct Run {
  int32_t y;
  int32_t x0;
  int32_t x1;
  int32_t label;
};

class RunLabeler {
 public:
  // fill_row(y, row) writes row y of the plane as `width` bytes, each exactly 0 (background) or 1 (foreground).
  using RowFn = std::function<void(int y, uint8_t* row)>;

  // Labels the foreground of a height x width plane. Afterwards runs() lists the foreground runs in raster order
  // with their component label; components are numbered 0, 1, ... in raster order of their first pixel, and
  // areas()[k] / first_run()[k] give the pixel count and first run of component k. Returns the component count.
  int label(int height, int width, Connectivity conn, const RowFn& fill_row);

  // Labels the runs already in runs() (rows ascending; within a row x ascending with at least one background
  // pixel between runs). Same results as label().
  int label_runs(Connectivity conn);

  std::vector<Run>& runs() { return runs_; }
  const std::vector<Run>& runs() const { return runs_; }
  const std::vector<int64_t>& areas() const { return areas_; }
  const std::vector<int32_t>& first_run() const { return first_run_; }

 private:
  int32_t find(int32_t i);
  void unite(int32_t a, int32_t b);

  std::vector<Run> runs_;
  std::vector<int32_t> parent_;
  std::vector<int64_t> areas_;
  std::vector<int32_t> first_run_;
  std::vector<uint8_t> row_;
};

// Holes of a pixel set S of a plane, S given as runs in raster order (as RunLabeler lists them):
// the 4-connected components of the complement of S that do not touch the plane's border (the dual of
// 8-connected S, the definition of scipy.ndimage.binary_fill_holes). Each hole is assigned to the run of S
// immediately left of the hole's first pixel in raster order — that pixel is always in S, and its component is the
// one enclosing the hole. `holes` receives the hole runs in raster order with `label` = index of that run in `set`.
// `work` is scratch space (its contents are replaced).
void find_holes(const std::vector<Run>& set, RunLabeler& work, std::vector<Run>& holes);

// Closed forms for the moment sums of a run, exact in 64-bit integers.
inline int64_t run_sum_x(int64_t x0, int64_t x1) { return (x0 + x1 - 1) * (x1 - x0) / 2; }
inline int64_t run_sum_xx(int64_t x0, int64_t x1) {
  // sum_{x=x0}^{x1-1} x^2 = S(x1-1) - S(x0-1) with S(k) = k(k+1)(2k+1)/6. The product k(k+1)(2k+1) passes 2^63 for
  // k > ~1.66e6 (a row that wide is legal), while the sum itself fits far longer: take the product in 128 bits.
  auto s = [](int64_t k) { return static_cast<__int128>(k) * (k + 1) * (2 * k + 1) / 6; };
  return static_cast<int64_t>(s(x1 - 1) - s(x0 - 1));
}

}  // namespace ramh::detail
