#include "common/data/dataset.h"

#include <cstdint>
#include <filesystem>
#include <limits>
#include <system_error>

#include "common/data/dataset_internal.h"

namespace r2f {
namespace dataset_internal {

std::string ParentDirName(const std::string& path) {
  // lexically_normal drops a trailing "/." or "//" so that the name is a real directory name.
  std::string name =
      std::filesystem::path(path).lexically_normal().parent_path().filename().string();
  return name.empty() || name == "." || name == ".." ? "dataset" : name;
}

}  // namespace dataset_internal

namespace {

bool Exists(const std::string& path) {
  std::error_code ec;  // no exceptions: an unreadable directory simply has no such file
  return std::filesystem::is_regular_file(path, ec);
}

// `dir/name.gz` if present, else `dir/name` if present.
Result<std::string> FindIdxFile(const std::string& dir, const std::string& name) {
  const std::string base = dir + "/" + name;
  if (Exists(base + ".gz")) return base + ".gz";
  if (Exists(base)) return base;
  return Status::NotFound("data set directory '" + dir + "' has neither '" + name + ".gz' nor '" +
                          name + "'");
}

}  // namespace

Result<Dataset> LoadDataset(const DatasetSpec& spec) {
  if (spec.split != "train" && spec.split != "test") {
    return Status::InvalidArgument("unknown data set split '" + spec.split +
                                   "' (use train or test)");
  }
  if (spec.limit < 0) {
    return Status::InvalidArgument("data set limit must be >= 0, got " +
                                   std::to_string(spec.limit));
  }
  const bool train = spec.split == "train";
  Dataset ds;
  if (spec.format == "idx") {
    const std::string prefix = train ? "train" : "t10k";
    R2F_ASSIGN_OR_RETURN(std::string images, FindIdxFile(spec.dir, prefix + "-images-idx3-ubyte"));
    R2F_ASSIGN_OR_RETURN(std::string labels, FindIdxFile(spec.dir, prefix + "-labels-idx1-ubyte"));
    R2F_ASSIGN_OR_RETURN(ds, LoadIdx(images, labels));
  } else if (spec.format == "cifar10") {
    std::vector<std::string> files;
    if (train) {
      for (int i = 1; i <= 5; ++i)
        files.push_back(spec.dir + "/data_batch_" + std::to_string(i) + ".bin");
    } else {
      files.push_back(spec.dir + "/test_batch.bin");
    }
    R2F_ASSIGN_OR_RETURN(ds, LoadCifar10(files));
  } else {
    return Status::InvalidArgument("unknown data set format '" + spec.format +
                                   "' (use idx or cifar10)");
  }
  ds.name = dataset_internal::ParentDirName(spec.dir + "/x") + "/" + spec.split;
  if (spec.limit > 0 && static_cast<uint64_t>(spec.limit) < ds.size()) {
    const size_t n = static_cast<size_t>(spec.limit);
    ds.images.resize(n * ds.image_bytes());
    ds.labels.resize(n);
    ds.images.shrink_to_fit();  // a small limit on the train split should not keep 47 MB
    ds.labels.shrink_to_fit();
  }
  return ds;
}

Status ParseDatasetSpec(ConfigMap& section, DatasetSpec* out) {
  out->format = section.GetChoice("format", out->format, {"idx", "cifar10"});
  out->dir = section.GetString("dir", out->dir);
  if (out->dir.empty()) section.Fail("dir", "must not be empty");
  out->split = section.GetChoice("split", out->split, {"train", "test"});
  out->limit = section.GetInt("limit", out->limit, 0, std::numeric_limits<int64_t>::max());
  return section.Finish();
}

}  // namespace r2f
