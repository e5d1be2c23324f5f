// IDX (the MNIST file format): a big-endian header, then the array in C order.
//   bytes 0-1: zero; byte 2: element type (0x08 = unsigned byte); byte 3: number of dimensions
//   then one uint32 size per dimension, then the data.
#include <cstdio>
#include <string>
#include <vector>

#include "common/base/compressed_file.h"
#include "common/data/dataset.h"
#include "common/data/dataset_internal.h"

namespace r2f {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // uint8, 3 dimensions [N, H, W]
constexpr uint32_t kLabelsMagic = 0x00000801;  // uint8, 1 dimension [N]

uint32_t ReadBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// An IDX uint8 array: its sizes and the payload (the header stripped off).
struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

Result<IdxArray> ReadIdx(const std::string& path, const char* kind, uint32_t magic) {
  R2F_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                       ReadFileMaybeGzip(path, dataset_internal::kMaxFileBytes));
  const std::string where = std::string("IDX ") + kind + " file '" + path + "': ";
  if (bytes.size() < 4) {
    return Status::Corruption(where + "truncated: " + std::to_string(bytes.size()) +
                              " bytes, shorter than the 4-byte magic");
  }
  const uint32_t found = ReadBigEndian32(bytes.data());
  if (found != magic) {
    std::string hint;
    if (found == kImagesMagic) hint = " (this is an image file)";
    if (found == kLabelsMagic) hint = " (this is a label file)";
    return Status::Corruption(where + "wrong magic " + Hex32(found) + ", expected " + Hex32(magic) +
                              hint);
  }
  const size_t rank = magic & 0xff;
  const size_t header = 4 + 4 * rank;
  if (bytes.size() < header) {
    return Status::Corruption(where + "truncated: the header needs " + std::to_string(header) +
                              " bytes, the file has " + std::to_string(bytes.size()));
  }
  IdxArray out;
  size_t expected = 1;
  std::string shape;
  for (size_t d = 0; d < rank; ++d) {
    const uint32_t size = ReadBigEndian32(bytes.data() + 4 + 4 * d);
    if (size == 0) return Status::Corruption(where + "dimension " + std::to_string(d) + " is 0");
    // Payloads beyond the file limit cannot be in the file: stop before size_t overflows.
    if (expected > dataset_internal::kMaxFileBytes / size) {
      return Status::Corruption(where + "the header promises an array beyond " +
                                std::to_string(dataset_internal::kMaxFileBytes) + " bytes");
    }
    expected *= size;
    shape += (d ? "x" : "") + std::to_string(size);
    out.dims.push_back(size);
  }
  const size_t payload = bytes.size() - header;
  if (payload < expected) {
    return Status::Corruption(where + "truncated: the header promises " + shape + " = " +
                              std::to_string(expected) + " bytes, " + std::to_string(payload) +
                              " follow");
  }
  if (payload > expected) {
    return Status::Corruption(where + std::to_string(payload - expected) +
                              " bytes of trailing data after the " + shape + " array");
  }
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  out.data = std::move(bytes);
  return out;
}

}  // namespace

Result<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path) {
  R2F_ASSIGN_OR_RETURN(IdxArray images, ReadIdx(images_path, "images", kImagesMagic));
  R2F_ASSIGN_OR_RETURN(IdxArray labels, ReadIdx(labels_path, "labels", kLabelsMagic));
  if (images.dims[0] != labels.dims[0]) {
    return Status::InvalidArgument("IDX images file '" + images_path + "' holds " +
                                   std::to_string(images.dims[0]) + " images but labels file '" +
                                   labels_path + "' holds " + std::to_string(labels.dims[0]) +
                                   " labels");
  }
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= dataset_internal::kNumClasses) {
      return Status::Corruption("IDX labels file '" + labels_path + "': label " +
                                std::to_string(labels.data[i]) + " of sample " + std::to_string(i) +
                                " is not below " + std::to_string(dataset_internal::kNumClasses) +
                                " classes");
    }
  }
  Dataset ds;
  ds.name = dataset_internal::ParentDirName(images_path);
  ds.channels = 1;
  ds.height = images.dims[1];
  ds.width = images.dims[2];
  ds.num_classes = dataset_internal::kNumClasses;
  ds.images = std::move(images.data);
  ds.labels = std::move(labels.data);
  return ds;
}

}  // namespace r2f
