// Status and Result<T>: how errors cross module lines in R2F (in the manner of LevelDB's Status).
//
// A function that can fail for reasons outside the programmer's control (bad file, bad config,
// bad message, lost connection) returns Status or Result<T>; exceptions stay inside a module.
// The message names what is wrong and where ("configs/x.yaml: key 'ber': must be in [0, 1]").
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace r2f {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // bad input: config, file contents, message, CLI
    kNotFound,         // missing file, unknown device, unknown key
    kIoError,          // read/write/network failure
    kCorruption,       // checksum or format damage
    kUnavailable,      // peer or broker not reachable (yet); retrying may help
    kDeadlineExceeded,
    kResourceExhausted,  // a size or memory limit was hit
    kInternal,
    kFailedPrecondition,  // the state does not allow it (a device leased to another server)
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status IoError(std::string msg) { return {Code::kIoError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status DeadlineExceeded(std::string msg) {
    return {Code::kDeadlineExceeded, std::move(msg)};
  }
  static Status ResourceExhausted(std::string msg) {
    return {Code::kResourceExhausted, std::move(msg)};
  }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) {
    return {Code::kFailedPrecondition, std::move(msg)};
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(const std::string& context) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

const char* CodeName(Status::Code code);

// Either a value or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "Result constructed from an OK status without a value");
    if (status_.ok()) status_ = Status::Internal("Result built from OK status without value");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace r2f

// Propagates a non-OK Status from an expression returning Status.
#define R2F_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::r2f::Status r2f_status_ = (expr);        \
    if (!r2f_status_.ok()) return r2f_status_; \
  } while (0)

#define R2F_CONCAT_INNER(a, b) a##b
#define R2F_CONCAT(a, b) R2F_CONCAT_INNER(a, b)
// Declares `lhs` from a Result<T> expression or returns its Status.
#define R2F_ASSIGN_OR_RETURN(lhs, expr) \
  R2F_ASSIGN_OR_RETURN_IMPL(R2F_CONCAT(r2f_result_, __LINE__), lhs, expr)
#define R2F_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
