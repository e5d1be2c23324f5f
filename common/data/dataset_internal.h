// Shared by the dataset readers; not part of the public interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace r2f::dataset_internal {

// Upper bound on one data set file (decompressed): far above CIFAR-10 and Fashion-MNIST, low
// enough that a corrupt header or a gzip bomb fails cleanly instead of exhausting memory.
constexpr size_t kMaxFileBytes = size_t{2} << 30;

constexpr uint32_t kNumClasses = 10;

// The last directory of `path`'s parent ("fashion-mnist" for ".../fashion-mnist/x.gz"), or
// "dataset" when there is none. Used as a data set name.
std::string ParentDirName(const std::string& path);

}  // namespace r2f::dataset_internal
