// How the processes of this project ask glibc to handle freed memory.
#pragma once

namespace r2f {

// Keeps freed blocks of up to 32 MiB in the process for the next allocation instead of
// returning them to the kernel. glibc's defaults map every block above 128 KiB (a threshold
// that only rises as such blocks are freed) and trim the heap top on free, so the per-batch
// buffers of a training step, a simulated forward pass or a reply (0.1-2 MB each, allocated
// and freed every iteration) were fresh pages every time: page faults were about half of a
// LibTorch training step of the default ResNet18 here (docs/results.md). The price is that
// the process keeps its peak heap. Call once at the start of main, before threads start;
// returns false if glibc refused a setting (the defaults then stay).
bool KeepFreedMemoryForReuse();

}  // namespace r2f
