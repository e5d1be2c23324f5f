// The exact layer-local method (method.reference: exact, docs/retraining.md): where the three
// TMR replicas of a layer disagreed, its vote may be wrong, so the device sends its own output
// for those elements as a patch beside the increment. The server decodes the increment against
// its rebuild and then overwrites the patched elements, which makes the rebuild exact except
// where all three replicas agreed on the same wrong value.
//
// A patch is one form byte and then
//   0 (positions): a sparse stream (sparse_stream.h) of the patched values, ~2 bytes each;
//   1 (bitmap):    varint(n); ceil(n/8) bytes in which bit i%8 of byte i/8 flags element i;
//                  over the k flagged values, ceil(k/8) bytes flagging the non-zero ones;
//                  then the non-zero values in position order. No compression.
// The encoder takes the bitmap above n/8 patched elements: at BER 1e-4 a third of all elements
// are patched, half of them ReLU zeros, and there the bitmap is both smaller than the positions
// (whose LZ4 pass gained mostly on those zeros) and needs no LZ4 pass at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/codec/flag_pack.h"
#include "common/codec/increment_codec.h"

namespace r2f {

// The values y[i] where mask[i] != 0, in the smaller form; *count gets their number. Empty
// when the mask is all zero.
std::string EncodePatch(const int8_t* y, const uint8_t* mask, size_t n, uint32_t* count);

// out[i] = the patch's value at each of its positions; Corruption for a damaged patch or one
// for another layer size.
Status ApplyPatch(std::string_view patch, int8_t* out, size_t n);

// The smallest exact form of the layer y given the voted reference v and the disagreement mask,
// among five: raw (kRaw), raw+LZ4 (kRawLz4), raw without its zeros (kRawZeroMap, ours), and a
// sparse or LZ4 increment against v with a patch of y where mask is set (the increment is 0
// there, so patched elements cost nothing twice). Ties prefer the increment. To keep the
// encoder cheap (LZ4 was most of its time), two forms are tried only where they can win: the
// dense LZ4 increment when more than 1/8 of the increment is non-zero, and raw+LZ4 when it
// could save a 32nd of the best other form even if every byte deep inside a run were free
// (ExactScan::run_bytes) and LZ4 of an eighth of the layer predicts a win. Every form
// is exact, so a skipped try costs bytes at most, never correctness. InvalidArgument for a layer
// over kMaxLayerElements. The layer is read once (ScanExact); its counts go to *scan if given
// (the caller's similarity and disagreement flag come from them, without another pass).
Result<EncodedLayer> EncodeExact(const int8_t* y, const int8_t* v, const uint8_t* mask, size_t n,
                                 ExactScan* scan = nullptr);

}  // namespace r2f
