#include "common/ir/model_zoo.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "common/ir/graph_builder.h"

namespace r2f {
namespace {

// Channels scaled by the width multiplier, rounded to a multiple of `divisor` and never below
// it (MobileNet's _make_divisible rule: rounding may not lose more than 10%).
uint32_t Scaled(double channels, double width, uint32_t divisor = 4) {
  double v = channels * width;
  auto r =
      static_cast<uint32_t>(std::max<double>(divisor, std::floor(v / divisor + 0.5) * divisor));
  if (r < 0.9 * v) r += divisor;
  return r;
}

ConvSpec Conv3(uint32_t out, uint32_t stride = 1, bool relu = true) {
  return ConvSpec{out, 3, stride, 1, 1, true, relu};
}
ConvSpec Conv1(uint32_t out, uint32_t stride = 1, bool relu = true) {
  return ConvSpec{out, 1, stride, 0, 1, true, relu};
}
ConvSpec Depthwise(uint32_t channels, uint32_t stride) {
  return ConvSpec{channels, 3, stride, 1, channels, true, false};
}

uint32_t Classifier(GraphBuilder& b, uint32_t x, uint32_t num_classes) {
  uint32_t pooled = b.GlobalAvgPool("avgpool", x);
  uint32_t flat = b.Flatten("flatten", pooled);
  return b.Linear("fc", flat, num_classes);
}

// ResNet-18/34 basic block and ResNet-50 bottleneck, torchvision naming.
uint32_t BasicBlock(GraphBuilder& b, const std::string& p, uint32_t x, uint32_t out,
                    uint32_t stride) {
  uint32_t in_ch = b.Channels(x);
  uint32_t y = b.Conv(p + ".conv1", x, Conv3(out, stride));
  y = b.Conv(p + ".conv2", y, Conv3(out, 1, false));
  uint32_t shortcut = x;
  if (stride != 1 || in_ch != out)
    shortcut = b.Conv(p + ".downsample", x, Conv1(out, stride, false));
  return b.Add(p + ".add", y, shortcut, true);
}

uint32_t Bottleneck(GraphBuilder& b, const std::string& p, uint32_t x, uint32_t mid,
                    uint32_t stride) {
  uint32_t out = mid * 4;
  uint32_t in_ch = b.Channels(x);
  uint32_t y = b.Conv(p + ".conv1", x, Conv1(mid));
  y = b.Conv(p + ".conv2", y, Conv3(mid, stride));
  y = b.Conv(p + ".conv3", y, Conv1(out, 1, false));
  uint32_t shortcut = x;
  if (stride != 1 || in_ch != out)
    shortcut = b.Conv(p + ".downsample", x, Conv1(out, stride, false));
  return b.Add(p + ".add", y, shortcut, true);
}

Result<pb::Graph> ResNet(const NetworkSpec& s, bool bottleneck, std::vector<int> blocks) {
  GraphBuilder b(s.network, s.input_chw, s.num_classes);
  uint32_t base = Scaled(64, s.width);
  uint32_t x = b.Conv("conv1", b.input(), Conv3(base));
  for (int stage = 0; stage < 4; ++stage) {
    uint32_t width = base << stage;
    for (int i = 0; i < blocks[stage]; ++i) {
      uint32_t stride = (stage > 0 && i == 0) ? 2 : 1;
      std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(i);
      x = bottleneck ? Bottleneck(b, p, x, width, stride) : BasicBlock(b, p, x, width, stride);
    }
  }
  return b.Finish(Classifier(b, x, s.num_classes));
}

Result<pb::Graph> MobileNetV2(const NetworkSpec& s) {
  GraphBuilder b(s.network, s.input_chw, s.num_classes);
  struct Stage {
    int t, c, n, stride;
  };
  // torchvision's table with the first two strides set to 1 for small images.
  const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 1},  {6, 32, 3, 2}, {6, 64, 4, 2},
                          {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  uint32_t x = b.Conv("features.0", b.input(), Conv3(Scaled(32, s.width, 8)));
  int block = 1;
  for (const Stage& st : stages) {
    uint32_t out = Scaled(st.c, s.width, 8);
    for (int i = 0; i < st.n; ++i, ++block) {
      uint32_t stride = i == 0 ? st.stride : 1;
      uint32_t in_ch = b.Channels(x);
      std::string p = "features." + std::to_string(block);
      uint32_t y = x;
      uint32_t hidden = in_ch * st.t;
      if (st.t != 1) y = b.Conv(p + ".expand", y, Conv1(hidden));
      ConvSpec dw = Depthwise(hidden, stride);
      dw.relu = true;
      y = b.Conv(p + ".depthwise", y, dw);
      y = b.Conv(p + ".project", y, Conv1(out, 1, false));
      x = (stride == 1 && in_ch == out) ? b.Add(p + ".add", y, x, false) : y;
    }
  }
  // The 1280-channel head is scaled with the width too (torchvision keeps it at 1280 for
  // width < 1): at 4x4 resolution and 10 classes it would dominate the parameters.
  uint32_t head = Scaled(1280, s.width, 8);
  x = b.Conv("features.head", x, Conv1(head));
  return b.Finish(Classifier(b, x, s.num_classes));
}

Result<pb::Graph> ShuffleNetV2(const NetworkSpec& s) {
  GraphBuilder b(s.network, s.input_chw, s.num_classes);
  // Stage widths of ShuffleNetV2 1.0x are 116/232/464; the width multiplier scales them.
  const uint32_t stage_out[3] = {Scaled(116, s.width, 4), Scaled(232, s.width, 4),
                                 Scaled(464, s.width, 4)};
  const int repeats[3] = {4, 8, 4};
  uint32_t x = b.Conv("conv1", b.input(), Conv3(24));  // torchvision: 24 at every width
  for (int st = 0; st < 3; ++st) {
    uint32_t out = stage_out[st];
    uint32_t half = out / 2;
    for (int i = 0; i < repeats[st]; ++i) {
      std::string p = "stage" + std::to_string(st + 2) + "." + std::to_string(i);
      uint32_t in_ch = b.Channels(x);
      uint32_t left, right_in;
      if (i == 0) {  // down-sampling unit: both branches see the whole input
        left = b.Conv(p + ".branch1.dw", x, Depthwise(in_ch, 2));
        left = b.Conv(p + ".branch1.pw", left, Conv1(half));
        right_in = x;
      } else {  // basic unit: channel split
        left = b.Slice(p + ".split_left", x, 0, in_ch / 2);
        right_in = b.Slice(p + ".split_right", x, in_ch / 2, in_ch);
      }
      uint32_t r = b.Conv(p + ".branch2.pw1", right_in, Conv1(half));
      r = b.Conv(p + ".branch2.dw", r, Depthwise(half, i == 0 ? 2 : 1));
      r = b.Conv(p + ".branch2.pw2", r, Conv1(half));
      uint32_t cat = b.Concat(p + ".concat", {left, r});
      x = b.ChannelShuffle(p + ".shuffle", cat, 2);
    }
  }
  x = b.Conv("conv5", x, Conv1(Scaled(1024, s.width, 8)));
  return b.Finish(Classifier(b, x, s.num_classes));
}

Result<pb::Graph> SqueezeNet(const NetworkSpec& s) {
  GraphBuilder b(s.network, s.input_chw, s.num_classes);
  auto fire = [&](const std::string& p, uint32_t x, double sq, double e) {
    uint32_t squeeze = b.Conv(p + ".squeeze", x, Conv1(Scaled(sq, s.width)));
    uint32_t e1 = b.Conv(p + ".expand1x1", squeeze, Conv1(Scaled(e, s.width)));
    uint32_t e3 = b.Conv(p + ".expand3x3", squeeze, Conv3(Scaled(e, s.width)));
    return b.Concat(p + ".concat", {e1, e3});
  };
  // SqueezeNet 1.1 layout; pooling with padding 1 instead of ceil mode.
  uint32_t x = b.Conv("features.0", b.input(), Conv3(Scaled(64, s.width)));
  x = b.MaxPool("features.pool1", x, 3, 2, 1);
  x = fire("features.3", x, 16, 64);
  x = fire("features.4", x, 16, 64);
  x = b.MaxPool("features.pool2", x, 3, 2, 1);
  x = fire("features.6", x, 32, 128);
  x = fire("features.7", x, 32, 128);
  x = b.MaxPool("features.pool3", x, 3, 2, 1);
  x = fire("features.9", x, 48, 192);
  x = fire("features.10", x, 48, 192);
  x = fire("features.11", x, 64, 256);
  x = fire("features.12", x, 64, 256);
  // The classifier is a 1x1 convolution to the classes (with BN and ReLU) and a global pool.
  x = b.Conv("classifier.conv", x, Conv1(s.num_classes));
  uint32_t pooled = b.GlobalAvgPool("classifier.avgpool", x);
  return b.Finish(b.Flatten("classifier.flatten", pooled));
}

}  // namespace

const std::vector<std::string>& NetworkNames() {
  static const std::vector<std::string> names = {"resnet18", "resnet50", "mobilenetv2",
                                                 "shufflenetv2", "squeezenet"};
  return names;
}

Result<NetworkSpec> DefaultNetworkSpec(const std::string& network) {
  // Widths chosen so that each network pre-trains on Fashion-MNIST within 15 minutes on two
  // cores (docs/models.md lists the resulting sizes).
  static const std::map<std::string, double> widths = {{"resnet18", 0.25},
                                                       {"resnet50", 0.25},
                                                       {"mobilenetv2", 0.5},
                                                       {"shufflenetv2", 0.5},
                                                       {"squeezenet", 0.5}};
  auto it = widths.find(network);
  if (it == widths.end()) return Status::NotFound("unknown network '" + network + "'");
  NetworkSpec spec;
  spec.network = network;
  spec.width = it->second;
  return spec;
}

Result<pb::Graph> BuildNetwork(const NetworkSpec& spec) {
  if (!(spec.width > 0.0 && spec.width <= 4.0)) {
    return Status::InvalidArgument("width must be in (0, 4], got " + std::to_string(spec.width));
  }
  if (spec.input_chw.size() != 3) return Status::InvalidArgument("input shape must be [C,H,W]");
  if (spec.network == "resnet18") return ResNet(spec, false, {2, 2, 2, 2});
  if (spec.network == "resnet50") return ResNet(spec, true, {3, 4, 6, 3});
  if (spec.network == "mobilenetv2") return MobileNetV2(spec);
  if (spec.network == "shufflenetv2") return ShuffleNetV2(spec);
  if (spec.network == "squeezenet") return SqueezeNet(spec);
  return Status::NotFound("unknown network '" + spec.network +
                          "' (known: resnet18, resnet50, "
                          "mobilenetv2, shufflenetv2, squeezenet)");
}

}  // namespace r2f
