// Tiny quantized models for the model fuzz target and its seed corpus: a few hundred bytes each,
// together covering every op of the graph IR, fast enough to run inside a fuzz iteration.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accel_sim/random_model.h"
#include "common/ir/graph_builder.h"
#include "r2f.pb.h"

namespace r2f::fuzz {

// Model `variant` (0 .. kTinyModelVariants - 1) with random parameters from `seed`.
inline constexpr int kTinyModelVariants = 4;

inline pb::QuantizedModel TinyModel(int variant, uint64_t seed = 1) {
  ConvSpec c4;
  c4.out_channels = 4;
  c4.batch_norm = false;
  GraphBuilder g("tiny" + std::to_string(variant), {1, 6, 6}, 3);
  uint32_t x = g.Conv("conv0", g.input(), c4);
  switch (variant % kTinyModelVariants) {
    case 0: {  // conv, residual add, global pool, linear
      uint32_t y = g.Conv("conv1", x, c4);
      x = g.Add("add", x, y, true);
      x = g.GlobalAvgPool("gap", x);
      break;
    }
    case 1: {  // strided and grouped convs, max pool
      ConvSpec s = c4;
      s.stride = 2;
      s.groups = 2;
      x = g.Conv("conv_s2_g2", x, s);
      x = g.MaxPool("maxpool", x, 2, 1, 0);
      x = g.GlobalAvgPool("gap", x);
      break;
    }
    case 2: {  // concat, channel shuffle, slice, avg pool
      ConvSpec one = c4;
      one.kernel = 1;
      one.pad = 0;
      uint32_t a = g.Conv("conv_a", x, one);
      x = g.Concat("concat", {x, a});
      x = g.ChannelShuffle("shuffle", x, 2);
      x = g.Slice("slice", x, 2, 6);
      x = g.AvgPool("avgpool", x, 2, 2);
      break;
    }
    default: {  // depthwise conv, flatten into a linear layer
      ConvSpec dw = c4;
      dw.groups = 4;
      x = g.Conv("dwconv", x, dw);
      x = g.MaxPool("maxpool", x, 3, 3, 0);
      break;
    }
  }
  x = g.Flatten("flatten", x);
  x = g.Linear("fc", x, 3);
  pb::Graph graph = g.Finish(x).value();
  pb::QuantizedModel model = accel::MakeRandomQuantizedModel(graph, seed).value();
  model.set_model_version(1);
  return model;
}

}  // namespace r2f::fuzz
