// kernels/ccl.cuh — connected-component labelling on CUDA, shared by postprocess.cu and quantify.cu (the CPU
// counterpart is ramh/detail/ccl.hpp). Include only from .cu files.
//
// Many planes (images x channels, or ROIs) are labelled by one launch per phase, each plane cut into 32 x 32 tiles:
//   1. label_tiles: one block per tile loads its pixels through a predicate, runs union-find in shared memory
//      (atomicMin unions, Playne & Hawick 2018) until every local union has succeeded, and turns each local
//      component into a node: parent (itself), area, first pixel (in-plane raster index, the component's first
//      pixel within the tile) and flags (touches the plane border). Pixels get the node's slot within the tile.
//   2. merge_tiles: threads on tile edges unite the nodes of adjacent pixels in different tiles in a global
//      union-find over node ids (the same atomicMin unions; every union loops until it has succeeded, so the
//      forest is complete when the kernel ends — there is no fixed iteration count anywhere).
//   3. flatten_nodes: every node points straight at its root, and the root aggregates area (sum), first pixel
//      (min) and flags (or) of its component.
// Afterwards a pixel's component is parent[tile * kSlots + slot[pixel]], its statistics sit at that root node.
// The root is the component's lowest node id, which is NOT its first pixel in raster order; `first` is.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "ramh/cuda_check.cuh"
#include "ramh/device.hpp"

namespace ramh::cuda::ccl {

constexpr int kTile = 32;                           // tiles are kTile x kTile pixels
constexpr int kTilePixels = kTile * kTile;
constexpr int kBlockRows = 8;                       // tile blocks are kTile x kBlockRows threads
constexpr int kRowsPerThread = kTile / kBlockRows;  // each thread handles 4 rows of its tile column
constexpr int kEdgeThreads = 3 * kTile;             // merge: top row + left column + right column
constexpr uint16_t kNoSlot = 0xFFFF;                // background pixel
constexpr int kBorderFlag = 1;                      // node flag: the component touches the plane's border

// The most components a tile can hold: isolated pixels on a 2-pixel grid (8-connected) or a checkerboard
// (4-connected). Node ids are tile * kSlots + slot.
template <int Conn>
struct SlotsPerTile;
template <>
struct SlotsPerTile<8> {
  static constexpr int value = (kTile / 2) * (kTile / 2);
};
template <>
struct SlotsPerTile<4> {
  static constexpr int value = kTilePixels / 2;
};

struct Geometry {
  int planes = 0, height = 0, width = 0, tiles_x = 0, tiles_y = 0;
  __host__ __device__ int tiles_per_plane() const { return tiles_x * tiles_y; }
  __host__ __device__ long long total_tiles() const { return static_cast<long long>(planes) * tiles_per_plane(); }
  __host__ __device__ long long plane_pixels() const { return static_cast<long long>(height) * width; }
  // Global tile index of pixel (x, y) of a plane.
  __host__ __device__ long long tile_of(int plane, int y, int x) const {
    return static_cast<long long>(plane) * tiles_per_plane() + (y / kTile) * tiles_x + (x / kTile);
  }
  __host__ __device__ long long pixel(int plane, int y, int x) const {
    return static_cast<long long>(plane) * plane_pixels() + static_cast<long long>(y) * width + x;
  }
};

inline Geometry make_geometry(long long planes, long long height, long long width) {
  Geometry g;
  g.planes = static_cast<int>(planes);
  g.height = static_cast<int>(height);
  g.width = static_cast<int>(width);
  g.tiles_x = static_cast<int>((width + kTile - 1) / kTile);
  g.tiles_y = static_cast<int>((height + kTile - 1) / kTile);
  return g;
}

// Node arrays of one labelling (device pointers; see NodeStorage).
struct Nodes {
  int* parent = nullptr;    // per node: union-find parent (node id); a root points to itself
  int* area = nullptr;      // per node: pixels; after flatten, the root holds the component's total
  int* first = nullptr;     // per node: in-plane raster index (y * W + x) of the first pixel; root: component's
  int* flags = nullptr;     // per node: kBorderFlag; root: OR over the component
  int* count = nullptr;     // per tile: nodes used
  uint16_t* slot = nullptr; // per pixel: the pixel's node slot in its tile, kNoSlot for background
};

// Device memory for one labelling of a geometry (pooled, stream-ordered). Only the node entries a tile uses are
// ever written or read, so nothing needs clearing.
struct NodeStorage {
  DeviceBuffer parent, area, first, flags, count, slot;
  NodeStorage(const Geometry& g, int slots_per_tile, int device, void* stream)
      : parent(bytes(g, slots_per_tile), device, stream),
        area(bytes(g, slots_per_tile), device, stream),
        first(bytes(g, slots_per_tile), device, stream),
        flags(bytes(g, slots_per_tile), device, stream),
        count(static_cast<std::size_t>(g.total_tiles()) * sizeof(int), device, stream),
        slot(static_cast<std::size_t>(g.planes) * static_cast<std::size_t>(g.plane_pixels()) * sizeof(uint16_t),
             device, stream) {}
  Nodes view() const {
    return Nodes{static_cast<int*>(parent.data()), static_cast<int*>(area.data()), static_cast<int*>(first.data()),
                 static_cast<int*>(flags.data()),  static_cast<int*>(count.data()), static_cast<uint16_t*>(slot.data())};
  }

 private:
  static std::size_t bytes(const Geometry& g, int slots) {
    return static_cast<std::size_t>(g.total_tiles()) * static_cast<std::size_t>(slots) * sizeof(int);
  }
};

// Node ids are int: the whole node space of the largest connectivity used must fit.
inline void check_node_space(const Geometry& g, int slots_per_tile, const char* what) {
  if (g.total_tiles() * slots_per_tile >= (1LL << 31))
    fail(what, " is too large for the CUDA labelling (", g.planes, " planes of ", g.height, " x ", g.width,
         "): split the batch");
}

// ---- union-find ------------------------------------------------------------------------------------------------
// Parents only ever decrease (atomicMin), so any value read, even a stale one, is an ancestor: find always
// terminates at a node that was a root when read, and unite retries until its atomicMin hits a root.
__device__ __forceinline__ int find_root(const volatile int* parent, int i) {
  int p = parent[i];
  while (p != i) {
    i = p;
    p = parent[i];
  }
  return i;
}

__device__ __forceinline__ void unite(int* parent, int a, int b) {
  const volatile int* v = parent;
  while (true) {
    a = find_root(v, a);
    b = find_root(v, b);
    if (a == b) return;
    if (a < b) {
      const int old = atomicMin(parent + b, a);
      if (old == b) return;
      b = old;
    } else {
      const int old = atomicMin(parent + a, b);
      if (old == a) return;
      a = old;
    }
  }
}

// ---- phase 1: tiles ----------------------------------------------------------------------------------------------
// Pred: __device__ bool operator()(int plane, int y, int x) const — is the pixel foreground? Called once per pixel.
template <int Conn, class Pred>
__global__ void __launch_bounds__(kTile* kBlockRows) label_tiles(Geometry g, Pred pred, Nodes nodes) {
  static_assert(Conn == 4 || Conn == 8, "connectivity is 4 or 8");
  constexpr int kSlots = SlotsPerTile<Conn>::value;
  __shared__ int L[kTilePixels];   // local union-find over tile-local pixel indices, -1 = background
  __shared__ int A[kTilePixels];   // area per local root
  __shared__ int F[kTilePixels];   // flags per local root
  __shared__ uint16_t S[kTilePixels];  // slot per local root
  __shared__ int n_slots;

  const long long tile = blockIdx.x;
  const int tpp = g.tiles_per_plane();
  const int plane = static_cast<int>(tile / tpp);
  const int t = static_cast<int>(tile % tpp);
  const int ty = t / g.tiles_x, tx = t % g.tiles_x;
  const int lx = threadIdx.x;
  const int x = tx * kTile + lx;

  unsigned fg = 0;  // bit k: the thread's pixel of row k is foreground
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int ly = threadIdx.y + k * kBlockRows, y = ty * kTile + ly, i = ly * kTile + lx;
    const bool on = x < g.width && y < g.height && pred(plane, y, x);
    fg |= static_cast<unsigned>(on) << k;
    L[i] = on ? i : -1;
    A[i] = 0;
    F[i] = 0;
  }
  if (threadIdx.x == 0 && threadIdx.y == 0) n_slots = 0;
  __syncthreads();

  // Unite with the backward neighbours inside the tile. 8-connected: the north neighbour, when set, already joins
  // the north-west and north-east ones (they touch it), and the west one joins the north-west one (it is the west
  // pixel's north neighbour); edges to other tiles are merge_tiles' job.
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    if (!(fg >> k & 1u)) continue;
    const int ly = threadIdx.y + k * kBlockRows, i = ly * kTile + lx;
    const bool n = ly > 0 && L[i - kTile] >= 0;
    const bool w = lx > 0 && L[i - 1] >= 0;
    if (n) unite(L, i, i - kTile);
    if (Conn == 4) {
      if (w) unite(L, i, i - 1);
    } else if (!n) {
      if (w)
        unite(L, i, i - 1);
      else if (lx > 0 && ly > 0 && L[i - kTile - 1] >= 0)
        unite(L, i, i - kTile - 1);
      if (lx < kTile - 1 && ly > 0 && L[i - kTile + 1] >= 0) unite(L, i, i - kTile + 1);
    }
  }
  __syncthreads();

#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int i = (threadIdx.y + k * kBlockRows) * kTile + lx;
    if (fg >> k & 1u) L[i] = find_root(L, i);
  }
  __syncthreads();

#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int ly = threadIdx.y + k * kBlockRows, y = ty * kTile + ly, i = ly * kTile + lx;
    const bool on = fg >> k & 1u;
    const int root = on ? L[i] : -1;
    // One shared atomic per (warp, component) instead of one per pixel: a row of a tile is one warp.
    const unsigned group = __match_any_sync(0xffffffffu, root);
    if (on && lx == __ffs(group) - 1) atomicAdd(&A[root], __popc(group));
    if (on && (x == 0 || y == 0 || x == g.width - 1 || y == g.height - 1)) atomicOr(&F[root], kBorderFlag);
    if (on && root == i) S[i] = static_cast<uint16_t>(atomicAdd(&n_slots, 1));
  }
  __syncthreads();

#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int ly = threadIdx.y + k * kBlockRows, y = ty * kTile + ly, i = ly * kTile + lx;
    if (x >= g.width || y >= g.height) continue;
    const bool on = fg >> k & 1u;
    nodes.slot[g.pixel(plane, y, x)] = on ? S[L[i]] : kNoSlot;
    if (on && L[i] == i) {
      const int node = static_cast<int>(tile * kSlots + S[i]);
      nodes.parent[node] = node;
      nodes.area[node] = A[i];
      nodes.first[node] = y * g.width + x;  // the local root is the component's first pixel within the tile
      nodes.flags[node] = F[i];
    }
  }
  if (threadIdx.x == 0 && threadIdx.y == 0) nodes.count[tile] = n_slots;
}

// ---- phase 2: tile edges -----------------------------------------------------------------------------------------
// Every adjacent pair in different tiles has its later pixel (raster order) on the top row, the left column or the
// right column of its tile, looking back at its W / NW / N / NE neighbour (W / N for 4-connectivity).
template <int Conn>
__global__ void __launch_bounds__(kEdgeThreads) merge_tiles(Geometry g, Nodes nodes) {
  constexpr int kSlots = SlotsPerTile<Conn>::value;
  const long long tile = blockIdx.x;
  const int tpp = g.tiles_per_plane();
  const int plane = static_cast<int>(tile / tpp);
  const int t = static_cast<int>(tile % tpp);
  const int ty = t / g.tiles_x, tx = t % g.tiles_x;
  const int e = threadIdx.x;
  int lx, ly;
  if (e < kTile) {
    lx = e;
    ly = 0;
  } else if (e < 2 * kTile - 1) {
    lx = 0;
    ly = e - kTile + 1;
  } else if (e < 3 * kTile - 2) {
    lx = kTile - 1;
    ly = e - 2 * kTile + 2;
  } else {
    return;
  }
  const int x = tx * kTile + lx, y = ty * kTile + ly;
  if (x >= g.width || y >= g.height) return;
  const uint16_t s = nodes.slot[g.pixel(plane, y, x)];
  if (s == kNoSlot) return;
  const int a = static_cast<int>(tile * kSlots + s);
  constexpr int kNeighbours = Conn == 8 ? 4 : 2;
  const int dx[4] = {-1, 0, -1, 1};
  const int dy[4] = {0, -1, -1, -1};
#pragma unroll
  for (int d = 0; d < kNeighbours; ++d) {
    const int nx = x + dx[d], ny = y + dy[d];
    if (nx < 0 || ny < 0 || nx >= g.width) continue;
    if (nx / kTile == tx && ny / kTile == ty) continue;  // same tile: label_tiles did it
    const uint16_t s2 = nodes.slot[g.pixel(plane, ny, nx)];
    if (s2 == kNoSlot) continue;
    unite(nodes.parent, a, static_cast<int>(g.tile_of(plane, ny, nx) * kSlots + s2));
  }
}

// ---- phase 3: roots -------------------------------------------------------------------------------------------
template <int Conn>
__global__ void flatten_nodes(Geometry g, Nodes nodes) {
  constexpr int kSlots = SlotsPerTile<Conn>::value;
  const long long tile = blockIdx.x;
  const int used = nodes.count[tile];
  for (int s = threadIdx.x; s < used; s += blockDim.x) {
    const int node = static_cast<int>(tile * kSlots + s);
    const int root = find_root(nodes.parent, node);
    if (root == node) continue;
    nodes.parent[node] = root;  // others may read the old or the new value: both are ancestors
    atomicAdd(nodes.area + root, nodes.area[node]);
    atomicMin(nodes.first + root, nodes.first[node]);
    atomicOr(nodes.flags + root, nodes.flags[node]);
  }
}

// Runs the three phases on `stream`. Afterwards nodes.parent[node] is the root for every used node.
template <int Conn, class Pred>
void label(const Geometry& g, const Pred& pred, const Nodes& nodes, cudaStream_t stream) {
  const auto tiles = static_cast<unsigned>(g.total_tiles());
  if (tiles == 0) return;
  label_tiles<Conn><<<tiles, dim3(kTile, kBlockRows), 0, stream>>>(g, pred, nodes);
  RAMH_CUDA_CHECK_LAUNCH();
  merge_tiles<Conn><<<tiles, kEdgeThreads, 0, stream>>>(g, nodes);
  RAMH_CUDA_CHECK_LAUNCH();
  flatten_nodes<Conn><<<tiles, 64, 0, stream>>>(g, nodes);
  RAMH_CUDA_CHECK_LAUNCH();
}

// Iterates the used nodes of a launch of one block per tile; fn(plane, node).
template <int Conn, class Fn>
__device__ __forceinline__ void for_each_node(const Geometry& g, const Nodes& nodes, Fn fn) {
  constexpr int kSlots = SlotsPerTile<Conn>::value;
  const long long tile = blockIdx.x;
  const int plane = static_cast<int>(tile / g.tiles_per_plane());
  const int used = nodes.count[tile];
  for (int s = threadIdx.x; s < used; s += blockDim.x) fn(plane, static_cast<int>(tile * kSlots + s));
}

}  // namespace ramh::cuda::ccl
