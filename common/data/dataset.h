// Image classification data sets held in memory as uint8 pixels (NCHW) and uint8 labels.
//
// Readers for the IDX format (MNIST, Fashion-MNIST; gzip-compressed or raw) and the CIFAR-10
// binary format. Every error names the offending file. The device owns its data set (its
// "sensor" data); training and evaluation requests refer to samples by index into it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/config.h"
#include "common/base/status.h"

namespace r2f {

struct Dataset {
  std::string name;  // e.g. "fashion-mnist/test"; for messages and logs only
  uint32_t channels = 0;
  uint32_t height = 0;
  uint32_t width = 0;
  uint32_t num_classes = 0;
  std::vector<uint8_t> images;  // size() * image_bytes() bytes, NCHW, channel-planar
  std::vector<uint8_t> labels;  // one per image, each < num_classes

  size_t size() const { return labels.size(); }
  size_t image_bytes() const { return size_t{channels} * height * width; }
  // Pixels of image i (i < size()): channels planes of height x width.
  const uint8_t* image(size_t i) const { return images.data() + i * image_bytes(); }
};

// IDX pair: images with magic 0x00000803 ([N, H, W] uint8), labels with magic 0x00000801 ([N]
// uint8), each gzip-compressed or raw. Ten classes. Errors: NotFound (missing file), Corruption
// (truncated, trailing bytes, wrong magic, empty, label >= 10), InvalidArgument (the files
// disagree on the number of samples).
Result<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path);

// CIFAR-10 binary batches, concatenated in the given order: records of 1 label byte and
// 3 x 32 x 32 channel-planar pixels. Errors: NotFound, Corruption (empty, size not a multiple
// of 3073 bytes, label >= 10), InvalidArgument (no files).
Result<Dataset> LoadCifar10(const std::vector<std::string>& batch_files);

struct DatasetSpec {
  std::string format = "idx";  // "idx" | "cifar10"
  std::string dir = "/usr/share/datasets/fashion-mnist";
  std::string split = "train";  // "train" | "test"
  int64_t limit = 0;            // 0: all samples; else at most the first `limit` samples
};

// Loads the split from the standard file names under spec.dir:
//   idx:     {train,t10k}-images-idx3-ubyte[.gz] and {train,t10k}-labels-idx1-ubyte[.gz]
//            (the .gz file is preferred when both exist)
//   cifar10: data_batch_1.bin .. data_batch_5.bin (train), test_batch.bin (test)
// `limit` larger than the split takes the whole split.
Result<Dataset> LoadDataset(const DatasetSpec& spec);

// Reads keys format, dir, split and limit of a config section into *out; keys that are absent
// keep the values *out already holds. The section must hold nothing else: returns
// section.Finish() (the first error in the section, unknown keys included).
Status ParseDatasetSpec(ConfigMap& section, DatasetSpec* out);

}  // namespace r2f
