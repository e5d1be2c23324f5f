// Model validation: every corruption of a deployed model is refused with a message that names
// the node or layer and what is wrong.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <random>
#include <string>

#include "accel_sim/accelerator.h"
#include "accel_sim/compiled_model.h"
#include "common/ir/model_zoo.h"
#include "tests/accel_sim/accel_models.h"

namespace r2f::accel {
namespace {

class CompileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = BuildNetwork(*DefaultNetworkSpec("resnet18")).value();
    model_ = MakeRandomQuantizedModel(graph_, 5).value();
  }
  // Index of the QuantizedLayer of node `name`, and its node id.
  int LayerIndex(const std::string& name, uint32_t* node_id) {
    for (int i = 0; i < model_.layers_size(); ++i) {
      const pb::Node& n = model_.graph().nodes(static_cast<int>(model_.layers(i).node_id()));
      if (n.name() == name) {
        *node_id = n.id();
        return i;
      }
    }
    return -1;
  }
  int NodeIndex(const std::string& name) {
    for (const pb::Node& n : model_.graph().nodes()) {
      if (n.name() == name) return static_cast<int>(n.id());
    }
    return -1;
  }
  // Compiles and returns the error message ("" if it compiled). The check without kernels
  // (Accelerator::Validate, the public cheap check) must say the same, in every test of this
  // file.
  std::string Error() {
    auto r = CompiledModel::Compile(model_);
    const std::string compiled = r.ok() ? "" : r.status().message();
    pb::QuantizedModel copy = model_;
    const Status checked = Accelerator::Validate(&copy);
    EXPECT_EQ(checked.ok() ? "" : checked.message(), compiled);
    return compiled;
  }
  pb::Graph graph_;
  pb::QuantizedModel model_;
};

TEST_F(CompileTest, AcceptsAWellFormedModel) {
  EXPECT_EQ(Error(), "");
  // Validate hands the model back whole (it moves it in and out).
  pb::QuantizedModel checked = model_;
  ASSERT_TRUE(Accelerator::Validate(&checked).ok());
  ASSERT_EQ(checked.layers_size(), model_.layers_size());
  for (int i = 0; i < checked.layers_size(); ++i) {
    EXPECT_EQ(checked.layers(i).SerializeAsString(), model_.layers(i).SerializeAsString());
  }
  EXPECT_EQ(checked.input_lut(), model_.input_lut());
  auto r = CompiledModel::Compile(model_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->mac_layer_ids(), MacLayerIds(graph_));
  // Shapes are inferred on the compiled copy.
  EXPECT_GT((*r)->graph().nodes(1).output_shape().dims_size(), 0);
}

TEST_F(CompileTest, WrongWeightCountNamesTheLayer) {
  uint32_t id = 0;
  const int li = LayerIndex("layer2.0.conv1", &id);
  ASSERT_GE(li, 0);
  const size_t expected = model_.layers(li).weights().size();
  model_.mutable_layers(li)->set_weights(std::string(100, '\1'));
  EXPECT_EQ(Error(), "layer " + std::to_string(id) + " 'layer2.0.conv1': expected " +
                         std::to_string(expected) + " weights, got 100");
}

TEST_F(CompileTest, WrongBiasAndWeightFracCounts) {
  uint32_t id = 0;
  const int li = LayerIndex("fc", &id);
  model_.mutable_layers(li)->add_bias(0);
  EXPECT_NE(Error().find("layer " + std::to_string(id) + " 'fc': expected 10 biases, got 11"),
            std::string::npos)
      << Error();
  model_.mutable_layers(li)->mutable_bias()->RemoveLast();
  model_.mutable_layers(li)->mutable_weight_frac()->RemoveLast();
  EXPECT_NE(Error().find("'fc': expected 10 weight_frac entries (one per output channel), got 9"),
            std::string::npos)
      << Error();
}

TEST_F(CompileTest, MissingActivationFracNamesTheNode) {
  const int n = model_.graph().nodes_size();
  model_.mutable_activation_frac()->RemoveLast();
  const std::string last = model_.graph().nodes(n - 1).name();
  EXPECT_NE(Error().find("node " + std::to_string(n - 1) + " '" + last + "'"), std::string::npos)
      << Error();
  EXPECT_NE(Error().find("missing activation_frac"), std::string::npos) << Error();
}

TEST_F(CompileTest, BadFormatVersion) {
  model_.set_format_version(kQuantizedModelFormatVersion + 1);
  EXPECT_NE(Error().find("format_version " + std::to_string(kQuantizedModelFormatVersion + 1)),
            std::string::npos)
      << Error();
}

TEST_F(CompileTest, MissingAndMisplacedParameters) {
  uint32_t id = 0;
  const int li = LayerIndex("layer1.0.conv2", &id);
  pb::QuantizedModel original = model_;
  model_.mutable_layers()->DeleteSubrange(li, 1);
  EXPECT_EQ(Error(),
            "layer " + std::to_string(id) + " 'layer1.0.conv2': has no parameters in the model");
  model_ = original;
  model_.add_layers()->CopyFrom(model_.layers(li));
  EXPECT_NE(Error().find("has two parameter entries"), std::string::npos) << Error();
  model_ = original;
  model_.mutable_layers(li)->set_node_id(static_cast<uint32_t>(NodeIndex("layer1.0.add")));
  EXPECT_NE(Error().find("'layer1.0.add' (add): has parameters"), std::string::npos) << Error();
  model_ = original;
  model_.mutable_layers(li)->set_node_id(100000);
  EXPECT_NE(Error().find("node 100000, which does not exist"), std::string::npos) << Error();
}

TEST_F(CompileTest, UnfoldedBatchNormIsRefused) {
  const int id = NodeIndex("layer3.1.conv1");
  model_.mutable_graph()->mutable_nodes(id)->mutable_conv()->set_batch_norm(true);
  EXPECT_NE(Error().find("'layer3.1.conv1': batch_norm is set"), std::string::npos) << Error();
}

TEST_F(CompileTest, InputLutSize) {
  model_.set_input_lut(std::string(255, '\0'));
  EXPECT_NE(Error().find("input_lut has 255 entries, expected 256"), std::string::npos) << Error();
}

TEST_F(CompileTest, ShiftOutOfRange) {
  uint32_t id = 0;
  const int li = LayerIndex("conv1", &id);
  model_.mutable_layers(li)->set_weight_frac(3, 60);
  EXPECT_NE(Error().find("'conv1': requantisation shift of channel 3"), std::string::npos)
      << Error();
}

TEST_F(CompileTest, BiasThatCouldOverflowTheAccumulator) {
  uint32_t id = 0;
  const int li = LayerIndex("layer4.1.conv2", &id);
  model_.mutable_layers(li)->set_bias(7, -2147483000);
  EXPECT_NE(Error().find("'layer4.1.conv2': bias[7] = -2147483000 could overflow"),
            std::string::npos)
      << Error();
}

TEST_F(CompileTest, PassThroughAndConcatFracs) {
  const int pool = NodeIndex("avgpool");
  model_.set_activation_frac(pool, model_.activation_frac(pool) + 1);
  EXPECT_NE(Error().find("'avgpool' (global_avgpool): activation_frac"), std::string::npos)
      << Error();

  pb::QuantizedModel squeeze =
      MakeRandomQuantizedModel(BuildNetwork(*DefaultNetworkSpec("squeezenet")).value(), 2).value();
  for (const pb::Node& n : squeeze.graph().nodes()) {
    if (n.op() != pb::OP_CONCAT) continue;
    squeeze.set_activation_frac(n.id(), squeeze.activation_frac(n.id()) - 1);
    auto r = CompiledModel::Compile(squeeze);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("'" + n.name() + "' (concat)"), std::string::npos);
    EXPECT_NE(r.status().message().find("smallest input frac"), std::string::npos);
    break;
  }
}

TEST_F(CompileTest, ReluOnlyWhereSupported) {
  const int pool = NodeIndex("avgpool");
  model_.mutable_graph()->mutable_nodes(pool)->set_activation(pb::ACT_RELU);
  EXPECT_NE(Error().find("'avgpool' (global_avgpool): a ReLU is only supported"), std::string::npos)
      << Error();
}

TEST_F(CompileTest, GraphErrorsComeFromShapeInference) {
  const int id = NodeIndex("layer2.0.conv2");
  model_.mutable_graph()->mutable_nodes(id)->mutable_conv()->set_groups(5);
  EXPECT_NE(Error().find("'layer2.0.conv2' (conv): groups 5"), std::string::npos) << Error();
}

TEST_F(CompileTest, AcceleratorCreateReportsTheSameErrors) {
  uint32_t id = 0;
  const int li = LayerIndex("fc", &id);
  model_.mutable_layers(li)->set_weights("x");
  auto r = Accelerator::Create(model_, AcceleratorConfig{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'fc': expected 1280 weights, got 1"), std::string::npos)
      << r.status().message();
}

// Compile with a previous model reuses its prepared layers (the deployModel of a retrained
// model): the result must be what compiling from scratch gives, for every network's layer kinds
// (grouped and depthwise layers take the direct kernel), whatever the previous model was.
class CompileReuseTest : public ::testing::TestWithParam<std::string> {
 protected:
  static pb::QuantizedModel Model(const std::string& network, double width_scale, uint64_t seed) {
    NetworkSpec spec = *DefaultNetworkSpec(network);
    spec.width *= width_scale;
    return MakeRandomQuantizedModel(*BuildNetwork(spec), seed).value();
  }
  // `model` with about `fraction` of its weights and a few biases changed, full range, and a
  // new version: a retraining step.
  static pb::QuantizedModel Retrained(pb::QuantizedModel model, double fraction, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::bernoulli_distribution change(fraction);
    for (pb::QuantizedLayer& layer : *model.mutable_layers()) {
      std::string& w = *layer.mutable_weights();
      for (char& c : w) {
        if (change(rng)) c = static_cast<char>(testing::RandomInt8(rng));
      }
      if (!w.empty()) w.back() = static_cast<char>(w.back() ^ 0x80);  // and every last weight
      layer.set_bias(0, layer.bias(0) + 3);
    }
    model.set_model_version(model.model_version() + 1);
    return model;
  }
  static void ExpectSamePreparation(const CompiledModel& fresh, const CompiledModel& reused) {
    ASSERT_EQ(fresh.mac_layers().size(), reused.mac_layers().size());
    for (size_t m = 0; m < fresh.mac_layers().size(); ++m) {
      const MacLayer& a = fresh.mac_layers()[m];
      const MacLayer& b = reused.mac_layers()[m];
      EXPECT_EQ(a.weights, b.weights) << a.name;
      EXPECT_EQ(a.weights_t, b.weights_t) << a.name;
      EXPECT_EQ(a.bias, b.bias) << a.name;
      ASSERT_EQ(a.packed.size(), b.packed.size()) << a.name;
      for (size_t g = 0; g < a.packed.size(); ++g) {
        EXPECT_EQ(a.packed[g].layout, b.packed[g].layout) << a.name;
        EXPECT_EQ(a.packed[g].n, b.packed[g].n) << a.name;
        EXPECT_EQ(a.packed[g].k, b.packed[g].k) << a.name;
        EXPECT_EQ(a.packed[g].k_groups, b.packed[g].k_groups) << a.name;
        EXPECT_EQ(a.packed[g].row_blocks, b.packed[g].row_blocks) << a.name;
        EXPECT_EQ(a.packed[g].data, b.packed[g].data) << a.name << " group " << g;
        EXPECT_EQ(a.packed[g].acc_init, b.packed[g].acc_init) << a.name << " group " << g;
      }
    }
  }
};

TEST_P(CompileReuseTest, RetrainedModelFromThePreviousEqualsAFreshCompile) {
  const pb::QuantizedModel base = Model(GetParam(), 1.0, 5);
  const std::unique_ptr<CompiledModel> previous = CompiledModel::Compile(base).value();
  for (double fraction : {0.0, 0.01, 0.5}) {
    const pb::QuantizedModel next = Retrained(base, fraction, 11);
    const auto fresh = CompiledModel::Compile(next).value();
    const auto reused = CompiledModel::Compile(next, previous.get()).value();
    ExpectSamePreparation(*fresh, *reused);
    EXPECT_EQ(fresh->reused_layers(), 0);
    EXPECT_EQ(reused->reused_layers(), static_cast<int>(reused->mac_layers().size()));
  }
}

TEST_P(CompileReuseTest, APreviousModelOfOtherShapesGivesTheSameResult) {
  // Same node ids, other channel counts; and another network altogether.
  const pb::QuantizedModel half_width = Model(GetParam(), 0.5, 7);
  const pb::QuantizedModel other_network =
      Model(GetParam() == "resnet18" ? "mobilenetv2" : "resnet18", 1.0, 7);
  for (const pb::QuantizedModel* other : {&half_width, &other_network}) {
    const auto previous = CompiledModel::Compile(*other).value();
    const pb::QuantizedModel next = Model(GetParam(), 1.0, 5);
    const auto fresh = CompiledModel::Compile(next).value();
    const auto reused = CompiledModel::Compile(next, previous.get()).value();
    ExpectSamePreparation(*fresh, *reused);
    if (other == &half_width) {  // most layers change shape (a few keep fixed widths)
      EXPECT_LT(reused->reused_layers(), static_cast<int>(reused->mac_layers().size()) / 2);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Networks, CompileReuseTest,
                         ::testing::Values("resnet18", "mobilenetv2", "shufflenetv2"));

// The accelerator built from the running one infers exactly what one built afresh does.
TEST(AcceleratorReuseTest, SameLogitsAsAFreshBuild) {
  pb::QuantizedModel base =
      MakeRandomQuantizedModel(*BuildNetwork(*DefaultNetworkSpec("resnet18")), 5).value();
  const auto running = Accelerator::Create(base, AcceleratorConfig{}).value();
  pb::QuantizedModel next = base;
  std::string& w = *next.mutable_layers(0)->mutable_weights();
  for (size_t i = 0; i < w.size(); i += 7) w[i] = static_cast<char>(w[i] + 1);
  next.set_model_version(base.model_version() + 1);
  const auto fresh = Accelerator::Create(next, AcceleratorConfig{}).value();
  const auto reused = Accelerator::Create(next, AcceleratorConfig{}, running.get()).value();
  std::vector<uint8_t> pixels(2 * 28 * 28);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37);
  ImageBatch images;
  images.batch = 2;
  images.pixels = pixels.data();
  images.sample_ids = {0, 1};
  const auto a = fresh->Infer(images, FaultConfig{}, TmrConfig{}, 1, false).value();
  const auto b = reused->Infer(images, FaultConfig{}, TmrConfig{}, 1, false).value();
  const auto before = running->Infer(images, FaultConfig{}, TmrConfig{}, 1, false).value();
  EXPECT_EQ(a.logits.data, b.logits.data);
  EXPECT_NE(before.logits.data, b.logits.data);  // the change reached the logits
}

}  // namespace
}  // namespace r2f::accel
