// Durable, atomic replacement of a small file (a deployed model, a device's mode).
//
// A reader sees either the old contents or the new ones, never a mix, even if the process or
// the machine dies half-way: the bytes go to a temporary file in the same directory, which is
// flushed to disk (fsync) and then renamed over the target; the directory is synced too so that
// the rename itself survives a power cut.
#pragma once

#include <string>
#include <string_view>

#include "common/base/status.h"

namespace r2f {

// Replaces `path` with `bytes`, creating missing parent directories. IoError naming the file and
// the system's reason on failure; the old contents are then left in place.
Status WriteFileAtomically(const std::string& path, std::string_view bytes);

}  // namespace r2f
