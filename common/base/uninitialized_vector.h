// A std::vector whose resize() leaves new elements of trivial types uninitialised, for buffers
// that are always written before they are read. std::vector<T>::resize zeroes every new
// element: for per-call scratch that is cleared and refilled on every call (the fault index of
// accel_sim/execution_faults.cc, the codec's per-thread buffers), that zeroing was a pass over
// the memory of its own.
#pragma once

#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace r2f {

// std::allocator, except that construction without arguments default-initialises (which for a
// type without a constructor or member initialisers writes nothing) instead of
// value-initialising.
template <typename T>
class DefaultInitAllocator : public std::allocator<T> {
 public:
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };

  DefaultInitAllocator() noexcept = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}

  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  // noexcept as the construction is: a vector relocates nothrow elements when it grows.
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) noexcept(std::is_nothrow_constructible_v<U, Args...>) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Elements added by resize() hold unspecified values until written (types with member
// initialisers still get them). Everything else behaves as std::vector<T>.
template <typename T>
using UninitializedVector = std::vector<T, DefaultInitAllocator<T>>;

}  // namespace r2f
