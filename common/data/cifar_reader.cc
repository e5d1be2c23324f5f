// CIFAR-10 binary version: each batch file is a sequence of 3073-byte records, one label byte
// (0..9) followed by a 32x32 image as three 1024-byte planes (red, green, blue).
#include <string>
#include <vector>

#include "common/base/compressed_file.h"
#include "common/data/dataset.h"
#include "common/data/dataset_internal.h"

namespace r2f {
namespace {

constexpr uint32_t kSide = 32;
constexpr size_t kImageBytes = 3 * kSide * kSide;
constexpr size_t kRecordBytes = 1 + kImageBytes;

}  // namespace

Result<Dataset> LoadCifar10(const std::vector<std::string>& batch_files) {
  if (batch_files.empty()) return Status::InvalidArgument("LoadCifar10: no batch files given");
  Dataset ds;
  ds.name = dataset_internal::ParentDirName(batch_files[0]);
  ds.channels = 3;
  ds.height = kSide;
  ds.width = kSide;
  ds.num_classes = dataset_internal::kNumClasses;
  for (const std::string& path : batch_files) {
    R2F_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                         ReadFileMaybeGzip(path, dataset_internal::kMaxFileBytes));
    const std::string where = "CIFAR-10 file '" + path + "': ";
    if (bytes.empty()) return Status::Corruption(where + "empty");
    if (bytes.size() % kRecordBytes != 0) {
      // CIFAR-100 has two label bytes per record; say so rather than "truncated".
      std::string hint = bytes.size() % (kRecordBytes + 1) == 0
                             ? " (3074-byte records are CIFAR-100, which is not supported)"
                             : "";
      return Status::Corruption(where + "truncated: " + std::to_string(bytes.size()) +
                                " bytes is not a multiple of the " + std::to_string(kRecordBytes) +
                                "-byte record" + hint);
    }
    const size_t records = bytes.size() / kRecordBytes;
    ds.labels.reserve(ds.labels.size() + records);
    ds.images.reserve(ds.images.size() + records * kImageBytes);
    for (size_t r = 0; r < records; ++r) {
      const uint8_t* rec = bytes.data() + r * kRecordBytes;
      if (rec[0] >= dataset_internal::kNumClasses) {
        return Status::Corruption(where + "label " + std::to_string(rec[0]) + " of record " +
                                  std::to_string(r) + " is not below " +
                                  std::to_string(dataset_internal::kNumClasses) + " classes");
      }
      ds.labels.push_back(rec[0]);
      ds.images.insert(ds.images.end(), rec + 1, rec + kRecordBytes);
    }
  }
  return ds;
}

}  // namespace r2f
