#include "accel_sim/mac_kernels.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "accel_sim/im2col.h"
#include "accel_sim/int16_gemm.h"
#include "accel_sim/requantize.h"
#include "accel_sim/scaled_row.h"
#include "accel_sim/tmr_voter.h"

namespace r2f::accel {
namespace {

// Column-tile size: the packed tile (k x cols int16 pairs; half that in the VNNI kernels' byte
// quads) should stay in L2 next to its int32 result, and there should be enough tiles for both
// cores (docs/accel_sim.md).
constexpr int64_t kTileBytes = 96 * 1024;
constexpr int64_t kMinTileCols = 2 * kPanelCols;

struct TileBuffers {
  std::vector<int8_t> col;      // im2col tile [k][cols]
  std::vector<int8_t> padded;   // im2col: zero-padded input rows of one channel
  std::vector<uint8_t> panels;  // the tile packed for Int8Gemm (64 bytes of slack to align)
  std::vector<int32_t> acc;     // [padded rows][padded cols]
  std::vector<Segment> segments;
  std::vector<uint32_t> deltas[3];  // epilogue: each replica's accumulator deltas of a row
  std::vector<uint32_t> zeros;      // epilogue: the deltas of a replica without any (never written)
  // Epilogue, per row segment: each (target, replica)'s input-flip deltas for all channels of
  // the group ([channel][len]), or nullptr (PrepareInputTiles); empty on the direct path.
  std::vector<std::vector<uint32_t>> input_tiles;
  std::vector<uint32_t*> input_tile_of;
};

TileBuffers& ThreadBuffers() {
  thread_local TileBuffers buffers;
  return buffers;
}

uint8_t* AlignTo64(uint8_t* p) { return p + ((64 - reinterpret_cast<uintptr_t>(p) % 64) % 64); }

// The im2col rows a row segment's weight-flip deltas read: row kk of the segment at
// x + kk * ld (Im2ColTile's layout, offset to the segment's first column).
struct SegmentInput {
  const int8_t* x = nullptr;
  int64_t ld = 0;
};

// Adds the weight-flip deltas (w' - w) * x of execution f, channel oc, to the n values of a row
// segment: all of the channel's flips in one AddScaledRows call per batch of terms.
void AddWeightDeltas(const MacLayer& L, const ExecutionFaults& f, int oc, const SegmentInput& in,
                     int64_t n, uint32_t* dst) {
  auto [first, last] = f.WeightDeltasOf(oc);
  if (first == last) return;
  const MacLayer::CachedWeights weights(L, oc);
  constexpr int kBatch = 32;
  ScaledRowTerm terms[kBatch];
  while (first != last) {
    int count = 0;
    for (; first != last && count < kBatch; ++first) {
      terms[count++] = {first->kk, first->Delta(weights.At(first->kk))};
    }
    AddScaledRows(in.x, in.ld, terms, count, n, dst);
  }
}

// The specials (hidden and output flips) of execution f in channel oc that fall into plane
// positions [pos, pos + len).
std::pair<const ExecutionFaults::Special*, const ExecutionFaults::Special*> SpecialsIn(
    const ExecutionFaults* f, int oc, int64_t hw, int64_t pos, int64_t len) {
  if (f == nullptr) return {nullptr, nullptr};
  auto [first, last] = f->SpecialsOf(oc);
  if (first == last || (pos == 0 && len == hw)) return {first, last};  // none, or whole plane
  // A channel has few specials at the BERs that matter (about one per plane at 1e-4): a few
  // steps forward, then a binary search, which mispredicted on almost every call.
  auto skip_below = [last](const ExecutionFaults::Special* p, uint32_t e) {
    for (int step = 0; step < 8; ++step, ++p) {
      if (p == last || p->element >= e) return p;
    }
    auto less = [](const ExecutionFaults::Special& s, uint32_t v) { return s.element < v; };
    return std::lower_bound(p, last, e, less);
  };
  first = skip_below(first, static_cast<uint32_t>(oc * hw + pos));
  return {first, skip_below(first, static_cast<uint32_t>(oc * hw + pos + len))};
}

// The faulty int8 value of one element of one execution: clean accumulator + bias + delta,
// hidden XOR, requantisation, output XOR.
int8_t FaultyValue(const MacLayer& L, int oc, int32_t clean, uint32_t delta,
                   const ExecutionFaults::Special* special) {
  uint32_t a = static_cast<uint32_t>(clean) + static_cast<uint32_t>(L.bias[oc]) + delta;
  uint8_t output_mask = 0;
  if (special != nullptr) {
    a ^= special->hidden_mask;
    output_mask = special->output_mask;
  }
  return static_cast<int8_t>(RequantizeScalar(static_cast<int32_t>(a), L.shift[oc], L.relu) ^
                             output_mask);
}

// Hidden and output flips in one row segment of one target, element by element (they are few),
// after the row itself has been written: each execution's exact value (clean accumulator, its
// row deltas `deltas[r]` or none, its masks), voted per element for TMR replicas.
void ApplySpecials(const MacLayer& L, const MacTarget& t, int oc, int64_t pos, int64_t len,
                   const int32_t* acc, const uint32_t* const* deltas, int8_t* out) {
  const int64_t hw = L.out_spatial();
  const auto base = static_cast<uint32_t>(oc * hw + pos);
  if (t.replicas == 1) {  // nothing to merge or vote: the common case, kept lean
    auto [first, last] = SpecialsIn(t.faults[0], oc, hw, pos, len);
    for (const ExecutionFaults::Special* s = first; s != last; ++s) {
      const uint32_t i = s->element - base;
      out[i] = FaultyValue(L, oc, acc[i], deltas[0] != nullptr ? deltas[0][i] : 0, s);
    }
    return;
  }
  const ExecutionFaults::Special* it[3] = {nullptr, nullptr, nullptr};
  const ExecutionFaults::Special* end[3] = {nullptr, nullptr, nullptr};
  bool any = false;
  for (int r = 0; r < t.replicas; ++r) {
    std::tie(it[r], end[r]) = SpecialsIn(t.faults[r], oc, hw, pos, len);
    any |= it[r] != end[r];
  }
  if (!any) return;
  while (true) {
    uint32_t e = UINT32_MAX;
    for (int r = 0; r < t.replicas; ++r) {
      if (it[r] != end[r]) e = std::min(e, it[r]->element);
    }
    if (e == UINT32_MAX) return;
    const int64_t i = e - base;
    // One replica's special where the other two replicas' deltas are equal: their values are
    // equal, so they outvote it and the row's vote stands (the common case: specials of
    // different replicas rarely meet). Only the disagreement is marked.
    if (t.replicas == 3) {
      int with = 0, only = 0;
      for (int r = 0; r < 3; ++r) {
        if (it[r] != end[r] && it[r]->element == e) {
          ++with;
          only = r;
        }
      }
      const uint32_t* da = deltas[(only + 1) % 3];
      const uint32_t* db = deltas[(only + 2) % 3];
      if (with == 1 && (da != nullptr ? da[i] : 0u) == (db != nullptr ? db[i] : 0u)) {
        ++it[only];
        if (t.disagree != nullptr) t.disagree[e] = 1;
        continue;
      }
    }
    int8_t v[3];
    bool hit = false;  // some replica's hidden state was flipped here
    for (int r = 0; r < t.replicas; ++r) {
      const ExecutionFaults::Special* s = nullptr;
      if (it[r] != end[r] && it[r]->element == e) s = it[r]++;
      hit |= s != nullptr;
      v[r] = FaultyValue(L, oc, acc[i], deltas[r] != nullptr ? deltas[r][i] : 0, s);
    }
    out[i] = MajorityVote(v[0], v[1], v[2]);
    if (t.disagree != nullptr) t.disagree[e] |= hit;  // e: the element within the image
  }
}

// d[r] = deltas[r], or a row of len zeros for a replica without deltas (nullptr).
void ZeroForNull(const uint32_t* const deltas[3], int64_t len, TileBuffers& buf,
                 const uint32_t* d[3]) {
  Grow(&buf.zeros, len);
  for (int r = 0; r < 3; ++r) d[r] = deltas[r] != nullptr ? deltas[r] : buf.zeros.data();
}

// The dense vote of three replicas (deltas[r] nullptr: replica r is clean in this row): each
// replica's requantised acc + bias + delta, voted bitwise in one pass, without the replicas'
// rows in memory.
void VoteDeltaRows(const int32_t* acc, const uint32_t* const deltas[3], int64_t len, int32_t bias,
                   int shift, bool relu, int8_t* out, TileBuffers& buf) {
  const uint32_t* d[3];
  ZeroForNull(deltas, len, buf, d);
  if (shift >= 1 && shift <= 31) {
    RequantizeVoteShifted(acc, d, len, bias, shift, relu ? 0 : -128, out);
    return;
  }
  const auto ubias = static_cast<uint32_t>(bias);
  const uint32_t *d0 = d[0], *d1 = d[1], *d2 = d[2];
  for (int64_t i = 0; i < len; ++i) {
    const uint32_t a = static_cast<uint32_t>(acc[i]) + ubias;
    out[i] = MajorityVote(RequantizeScalar(static_cast<int32_t>(a + d0[i]), shift, relu),
                          RequantizeScalar(static_cast<int32_t>(a + d1[i]), shift, relu),
                          RequantizeScalar(static_cast<int32_t>(a + d2[i]), shift, relu));
  }
}

// Marks in t.disagree (offset: the row's first element) where the three replicas' accumulators
// differ (deltas[r] nullptr: replica r's are the clean ones). Accumulators, not outputs: ReLU
// and saturation map different faulty sums to one output, so three replicas hit by different
// flips can agree on a wrong output (measured on ResNet18 with weight flips), but not on a
// wrong sum. A voter that compares the sums is what a device needs to know where its vote may
// be wrong (docs/retraining.md, "Exact layer-local reference (ours, the default)").
void MarkDisagreement(const MacTarget& t, int64_t offset, const uint32_t* const deltas[3],
                      int64_t len, TileBuffers& buf) {
  const uint32_t* d[3];
  ZeroForNull(deltas, len, buf, d);
  // Local pointers and no branch, so that the loop vectorises (a store through uint8_t* may
  // alias d[], which the compiler would then reload every element).
  const uint32_t *d0 = d[0], *d1 = d[1], *d2 = d[2];
  uint8_t* mask = t.disagree + offset;
  for (int64_t i = 0; i < len; ++i) {
    mask[i] = static_cast<uint8_t>((d0[i] != d1[i]) | (d1[i] != d2[i]));
  }
}

// The accumulator deltas of execution f for channel oc, output rows [oy0, oy1), into `row`
// (len values); nullptr if f changes nothing there. `input_row`, if not nullptr, already holds
// the channel's input-flip deltas for the segment (PrepareInputTiles): the weight deltas are
// added to it and it is returned.
const uint32_t* RowDeltas(const MacLayer& L, const ExecutionFaults* f, int oc, int oy0, int oy1,
                          const SegmentInput& in, int64_t len, uint32_t* input_row,
                          std::vector<uint32_t>* row) {
  if (f == nullptr) return nullptr;
  const bool weights = f->HasWeightDeltas(oc);
  if (input_row != nullptr) {
    if (weights) AddWeightDeltas(L, *f, oc, in, len, input_row);
    return input_row;
  }
  const bool inputs = f->HasInputDeltas(oc, oy0, oy1);
  if (!weights && !inputs) return nullptr;
  Grow(row, len);
  std::fill(row->begin(), row->begin() + len, 0u);
  if (weights) AddWeightDeltas(L, *f, oc, in, len, row->data());
  if (inputs) f->AddInputDeltas(oc, oy0, oy1, row->data());
  return row->data();
}

// Requantises the clean accumulators (bias not included) of channel oc, output rows
// [oy0, oy1), into every target of `image`: with each execution's deltas, TMR replicas voted,
// hidden and output flips applied. `in` gives the segment's im2col rows (read only for weight
// flips). A lone execution that is the image's only target owns `acc`: its deltas are added
// to it in place.
void EmitRow(const MacLayer& L, const MacImage& image, int oc, int oy0, int oy1, int32_t* acc,
             const SegmentInput& in, TileBuffers& buf) {
  const int32_t bias = L.bias[oc];
  const int shift = L.shift[oc];
  const int64_t pos = static_cast<int64_t>(oy0) * L.out_w;
  const int64_t len = static_cast<int64_t>(oy1 - oy0) * L.out_w;
  const int64_t offset = oc * L.out_spatial() + pos;
  for (size_t ti = 0; ti < image.targets.size(); ++ti) {
    const MacTarget& t = image.targets[ti];
    int8_t* out = t.output + offset;
    bool affected = false;
    for (int r = 0; r < t.replicas; ++r) {
      affected |= t.faults[r] != nullptr && t.faults[r]->Affects(oc);
    }
    if (!affected) {  // the clean case
      RequantizeRow(acc, len, bias, shift, L.relu, out);
      continue;
    }
    const uint32_t* deltas[3] = {nullptr, nullptr, nullptr};
    if (t.replicas == 1 && image.targets.size() == 1) {
      // The common faulty case: no other target reads this GEMM result, so the deltas go into
      // it and `acc` becomes the faulty accumulators (specials then need no deltas).
      const ExecutionFaults& f = *t.faults[0];
      auto* faulty = reinterpret_cast<uint32_t*>(acc);
      if (f.HasWeightDeltas(oc)) AddWeightDeltas(L, f, oc, in, len, faulty);
      if (f.HasInputDeltas(oc, oy0, oy1)) f.AddInputDeltas(oc, oy0, oy1, faulty);
      RequantizeRow(acc, len, bias, shift, L.relu, out);
      if (f.HasSpecials(oc)) ApplySpecials(L, t, oc, pos, len, acc, deltas, out);
      continue;
    }
    int touched = 0;
    for (int r = 0; r < t.replicas; ++r) {
      const size_t slot = ti * 3 + static_cast<size_t>(r);
      uint32_t* input_row = slot < buf.input_tile_of.size() && buf.input_tile_of[slot] != nullptr
                                ? buf.input_tile_of[slot] + (oc % L.group_out_c) * len
                                : nullptr;
      deltas[r] = RowDeltas(L, t.faults[r], oc, oy0, oy1, in, len, input_row, &buf.deltas[r]);
      touched += deltas[r] != nullptr;
    }
    if (t.replicas == 1) {
      if (deltas[0] != nullptr) {
        RequantizeRowDelta(acc, deltas[0], len, bias, shift, L.relu, out);
      } else {
        RequantizeRow(acc, len, bias, shift, L.relu, out);
      }
    } else if (touched < 2) {
      RequantizeRow(acc, len, bias, shift, L.relu, out);  // one faulty replica is outvoted
      if (touched == 1 && t.disagree != nullptr) MarkDisagreement(t, offset, deltas, len, buf);
    } else {
      VoteDeltaRows(acc, deltas, len, bias, shift, L.relu, out, buf);
      if (t.disagree != nullptr) MarkDisagreement(t, offset, deltas, len, buf);
    }
    ApplySpecials(L, t, oc, pos, len, acc, deltas, out);
  }
}

// Builds, for one row segment of `image`, the input-flip deltas of every (target, replica)
// that has some there, for all channels of group g at once (ExecutionFaults::
// AddGroupInputDeltas): EmitRow then finds each channel's row ready. Not for a lone execution
// that owns the GEMM result (EmitRow adds its deltas in place).
void PrepareInputTiles(const MacLayer& L, const MacImage& image, int g, int oy0, int oy1,
                       TileBuffers& buf) {
  const size_t slots = image.targets.size() * 3;
  buf.input_tile_of.assign(slots, nullptr);
  if (image.targets.size() == 1 && image.targets[0].replicas == 1) return;
  if (buf.input_tiles.size() < slots) buf.input_tiles.resize(slots);
  const int64_t size = static_cast<int64_t>(oy1 - oy0) * L.out_w * L.group_out_c;
  for (size_t ti = 0; ti < image.targets.size(); ++ti) {
    const MacTarget& t = image.targets[ti];
    for (int r = 0; r < t.replicas; ++r) {
      const ExecutionFaults* f = t.faults[r];
      if (f == nullptr || !f->GroupInputDeltasReach(g, oy0, oy1)) continue;
      std::vector<uint32_t>& tile = buf.input_tiles[ti * 3 + static_cast<size_t>(r)];
      Grow(&tile, size);
      std::fill(tile.begin(), tile.begin() + size, 0u);
      f->AddGroupInputDeltas(g, oy0, oy1, tile.data());
      buf.input_tile_of[ti * 3 + static_cast<size_t>(r)] = tile.data();
    }
  }
}

// The epilogue of row segment s of group g when the segment's image has one target, a lone
// execution f (an inference without TMR: the common faulty case). The same values as EmitRow,
// without its general path's work per channel (which targets and replicas the channel affects,
// a search for the specials in the segment): f's deltas go into the tile, the row is
// requantised, then the channel's hidden and output flips that lie in the segment are applied,
// found by a filter over the channel's few specials.
void EmitLoneSegment(const MacLayer& L, const MacTarget& t, const ExecutionFaults& f, int g,
                     const Segment& s, int32_t* acc, int64_t ld, const SegmentInput& in) {
  const int64_t hw = L.out_spatial();
  const int64_t pos = static_cast<int64_t>(s.oy0) * L.out_w;
  const int64_t len = static_cast<int64_t>(s.oy1 - s.oy0) * L.out_w;
  for (int n = 0; n < L.group_out_c; ++n) {
    const int oc = g * L.group_out_c + n;
    int32_t* row = acc + n * ld + s.col0;
    auto* faulty = reinterpret_cast<uint32_t*>(row);
    if (f.HasWeightDeltas(oc)) AddWeightDeltas(L, f, oc, in, len, faulty);
    if (f.HasInputDeltas(oc, s.oy0, s.oy1)) f.AddInputDeltas(oc, s.oy0, s.oy1, faulty);
    RequantizeRow(row, len, L.bias[oc], L.shift[oc], L.relu, t.output + oc * hw + pos);
    auto [first, last] = f.SpecialsOf(oc);
    const auto base = static_cast<uint32_t>(oc * hw + pos);
    for (const ExecutionFaults::Special* p = first; p != last; ++p) {
      const uint32_t i = p->element - base;  // wraps for the segment's earlier rows
      if (i < static_cast<uint64_t>(len)) t.output[base + i] = FaultyValue(L, oc, row[i], 0, p);
    }
  }
}

// Requantisation of a tile's GEMM result acc[n * ld + j] for the output channels of group g;
// col is the tile's im2col (`cols` columns per row).
void EpilogueTile(const MacLayer& L, const std::vector<MacImage>& images, int g,
                  const std::vector<Segment>& segments, int32_t* acc, int64_t ld, const int8_t* col,
                  int64_t cols, TileBuffers& buf) {
  // Image by image, channel by channel: each execution's fault index is then read
  // sequentially (interleaving the images' indexes cost cache misses on every channel).
  for (const Segment& s : segments) {
    const SegmentInput in{col + s.col0, cols};
    for (const MacTarget& t : images[s.image].targets) {
      for (int r = 0; r < t.replicas; ++r) {
        if (t.faults[r] != nullptr) {
          t.faults[r]->Prefetch(g * L.group_out_c, (g + 1) * L.group_out_c);
        }
      }
    }
    const MacImage& image = images[s.image];
    if (image.targets.size() == 1 && image.targets[0].replicas == 1 &&
        image.targets[0].faults[0] != nullptr) {
      EmitLoneSegment(L, image.targets[0], *image.targets[0].faults[0], g, s, acc, ld, in);
      continue;
    }
    PrepareInputTiles(L, images[s.image], g, s.oy0, s.oy1, buf);
    for (int n = 0; n < L.group_out_c; ++n) {
      // Consecutive output rows of one image are contiguous on both sides.
      EmitRow(L, images[s.image], g * L.group_out_c + n, s.oy0, s.oy1, acc + n * ld + s.col0, in,
              buf);
    }
  }
}

void RunGemmPath(const MacLayer& L, const std::vector<MacImage>& images) {
  const int64_t total_rows = static_cast<int64_t>(images.size()) * L.out_h;
  // Tile width in output rows: small enough for L2, large enough for the kernel, and at least
  // two tiles per core when the layer is big enough to share.
  int64_t cols_target = std::max<int64_t>(kMinTileCols, kTileBytes / (2 * int64_t{L.k}));
  const int threads = omp_get_max_threads();
  const int64_t total_cols = total_rows * L.out_w;
  const int64_t share = (total_cols + 2 * threads - 1) / (2 * threads);
  cols_target = std::min(cols_target, std::max<int64_t>(share, kMinTileCols));
  const int64_t rows_per_tile = std::max<int64_t>(1, cols_target / L.out_w);
  // As many tiles as that needs, rounded up to a multiple of the threads, with the rows split
  // evenly: the deep layers have 4-10 tiles, and 7 tiles of which the last was short left one
  // core idle for a whole tile at the end of the layer (a tenth of the threads' time in the
  // clean pass's MAC layers was such waiting; docs/accel_sim.md, Threading). Where whole
  // panels are possible (out_w divides kPanelCols), tiles are cut at multiples of the panel
  // width: the GEMM pads a tile's columns to whole panels.
  int64_t unit = kPanelCols % L.out_w == 0 ? kPanelCols / L.out_w : 1;  // rows
  if (unit > rows_per_tile) unit = 1;
  const int64_t units = (total_rows + unit - 1) / unit;
  const int64_t units_per_tile = std::max<int64_t>(1, rows_per_tile / unit);
  int64_t tiles = (units + units_per_tile - 1) / units_per_tile;
  tiles = std::min(units, (tiles + threads - 1) / threads * threads);
  const int64_t items = tiles * L.groups;

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t tile = item / L.groups;
    const int g = static_cast<int>(item % L.groups);
    const int64_t r0 = std::min(total_rows, tile * units / tiles * unit);
    const int64_t r1 = std::min(total_rows, (tile + 1) * units / tiles * unit);
    const auto cols = static_cast<int>((r1 - r0) * L.out_w);
    const int64_t ld = (cols + kPanelCols - 1) / kPanelCols * kPanelCols;
    const PackedWeights& w = L.packed[g];
    TileBuffers& buf = ThreadBuffers();
    Grow(&buf.col, int64_t{cols} * L.k);
    Grow(&buf.panels, PanelBytes(w.layout, L.k, cols) + 64);
    Grow(&buf.acc, int64_t{w.row_blocks} * kRowBlock * ld);
    TileSegments(L, r0, r1, &buf.segments);
    Im2ColTile(L, images, g, buf.segments, cols, buf.col.data(), &buf.padded);
    // 64-byte aligned panels: every 512-bit panel load then reads one cache line.
    uint8_t* panels = AlignTo64(buf.panels.data());
    PackPanels(w.layout, buf.col.data(), L.k, cols, cols, panels);
    Int8Gemm(w, panels, cols, buf.acc.data(), static_cast<int>(ld));
    EpilogueTile(L, images, g, buf.segments, buf.acc.data(), ld, buf.col.data(), cols, buf);
  }
}

// Direct int32 convolution of one output channel of one image (small grouped convolutions,
// where a GEMM per group would have N = 1 or 2).
void DirectChannel(const MacLayer& L, const int8_t* in, int oc, int32_t* acc) {
  const int64_t hw = L.out_spatial();
  std::fill(acc, acc + hw, 0);
  const int g = oc / L.group_out_c;
  const int8_t* w = L.weights.data() + static_cast<int64_t>(oc) * L.k;
  for (int cl = 0; cl < L.group_in_c; ++cl) {
    const int8_t* plane = in + static_cast<int64_t>(g * L.group_in_c + cl) * L.in_h * L.in_w;
    for (int ky = 0; ky < L.kernel_h; ++ky) {
      for (int kx = 0; kx < L.kernel_w; ++kx) {
        const int32_t wv = w[(cl * L.kernel_h + ky) * L.kernel_w + kx];
        if (wv == 0) continue;
        int lo, hi;
        ValidRange(L.out_w, L.in_w, L.stride_w, L.pad_w, kx, &lo, &hi);
        const int offset = kx - L.pad_w;
        for (int oy = 0; oy < L.out_h; ++oy) {
          const int iy = oy * L.stride_h + ky - L.pad_h;
          if (iy < 0 || iy >= L.in_h) continue;
          const int8_t* src = plane + static_cast<int64_t>(iy) * L.in_w;
          int32_t* dst = acc + static_cast<int64_t>(oy) * L.out_w;
          if (L.stride_w == 1) {
            const int8_t* s = src + offset;
            for (int ox = lo; ox < hi; ++ox) dst[ox] += wv * s[ox];
          } else {
            for (int ox = lo; ox < hi; ++ox) dst[ox] += wv * src[ox * L.stride_w + offset];
          }
        }
      }
    }
  }
}

// The im2col rows that the weight flips of channel oc of image b read, for the direct path
// (which has no im2col): only those rows are built, in buf.col ([kk][out_spatial]).
SegmentInput WeightFlipRows(const MacLayer& L, const std::vector<MacImage>& images, int64_t b,
                            int oc, TileBuffers& buf) {
  const int64_t hw = L.out_spatial();
  SegmentInput in{nullptr, hw};
  for (const MacTarget& t : images[b].targets) {
    for (int r = 0; r < t.replicas; ++r) {
      if (t.faults[r] == nullptr || !t.faults[r]->HasWeightDeltas(oc)) continue;
      if (in.x == nullptr) {
        Grow(&buf.col, hw * L.k);
        buf.segments.assign(1, Segment{b, 0, L.out_h, 0});
        in.x = buf.col.data();
      }
      auto [first, last] = t.faults[r]->WeightDeltasOf(oc);
      for (const ExecutionFaults::WeightDelta* d = first; d != last; ++d) {
        Im2ColRow(L, images, oc / L.group_out_c, buf.segments, d->kk, buf.col.data() + d->kk * hw);
      }
    }
  }
  return in;
}

void RunDirectPath(const MacLayer& L, const std::vector<MacImage>& images) {
  const auto num_images = static_cast<int64_t>(images.size());
  const int64_t items = num_images * L.out_c;
  const int64_t hw = L.out_spatial();
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t b = item / L.out_c;
    const int oc = static_cast<int>(item % L.out_c);
    TileBuffers& buf = ThreadBuffers();
    Grow(&buf.acc, hw);
    DirectChannel(L, images[b].input, oc, buf.acc.data());
    const SegmentInput in = WeightFlipRows(L, images, b, oc, buf);
    buf.input_tile_of.clear();  // one channel at a time: EmitRow adds its input deltas itself
    EmitRow(L, images[b], oc, 0, L.out_h, buf.acc.data(), in, buf);
  }
}

}  // namespace

void RunMacLayer(const MacLayer& layer, const std::vector<MacImage>& images) {
  if (images.empty()) return;
  if (layer.direct_kernel) {
    RunDirectPath(layer, images);
  } else {
    RunGemmPath(layer, images);
  }
}

Status RunMacLayerWithPlans(const MacLayer& layer, const int8_t* input,
                            const std::vector<FaultPlan>& plans, int8_t* output,
                            uint8_t* disagree) {
  if (plans.size() != 1 && plans.size() != 3) {
    return Status::InvalidArgument("a MAC layer runs once or three times, not " +
                                   std::to_string(plans.size()));
  }
  std::vector<ExecutionFaults> faults(plans.size());
  // As the executor does: a lone execution reads a flipped copy of its input, TMR replicas
  // share the clean input and carry input deltas.
  std::vector<int8_t> faulty_input;
  MacImage image;
  image.input = input;
  MacTarget target;
  target.output = output;
  target.replicas = static_cast<int>(plans.size());
  if (plans.size() == 3 && disagree != nullptr) {
    std::fill(disagree, disagree + layer.out_elements(), uint8_t{0});
    target.disagree = disagree;
  }
  for (size_t r = 0; r < plans.size(); ++r) {
    R2F_RETURN_IF_ERROR(faults[r].Build(layer, plans[r], plans.size() == 1));
    int8_t* copy = nullptr;
    if (faults[r].has_private_input()) {
      faulty_input.resize(static_cast<size_t>(layer.in_elements()));
      copy = faulty_input.data();
      image.input = copy;
    }
    faults[r].BindInput(input, copy);
    if (faults[r].any()) target.faults[r] = &faults[r];
  }
  image.targets.push_back(target);
  RunMacLayer(layer, {image});
  return Status::Ok();
}

}  // namespace r2f::accel
