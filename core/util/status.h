// Errors as values (house style 8): every core API that can fail returns razor::result<T> or
// razor::status. A status carries a stable code from the one table below and a message a user can act
// on (it names the file and the problem). Exceptions never cross the job runner.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace razor {

// One table drives the error codes: the protocol, the CLI exit codes and the tests read it.
#define RAZOR_ERROR_CODES(X)                                                                     \
  X(ok, 0, "ok")                                                                                 \
  X(io, 10, "file could not be read or written")                                                 \
  X(not_found, 11, "file or tensor not found")                                                   \
  X(bad_format, 12, "malformed file")                                                            \
  X(unsupported, 13, "not supported")                                                            \
  X(shape_mismatch, 14, "tensor shape does not match")                                           \
  X(bad_config, 15, "model config is missing what the adapter needs")                            \
  X(bad_recipe, 16, "recipe is invalid")                                                         \
  X(disk_full, 17, "no space left on device")                                                    \
  X(cancelled, 18, "cancelled")                                                                  \
  X(invalid_argument, 19, "invalid argument")                                                    \
  X(needs_imatrix, 20, "this type needs an importance matrix")                                   \
  X(device, 21, "GPU error")                                                                     \
  X(external, 22, "external program failed")                                                     \
  X(protocol, 23, "protocol error")                                                              \
  X(internal, 99, "internal error")

enum class errc : int {
#define X(name, num, text) name = num,
  RAZOR_ERROR_CODES(X)
#undef X
};

std::string_view errc_name(errc c);
std::string_view errc_text(errc c);

class status {
 public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static status success() { return {}; }
  bool ok() const { return code_ == errc::ok; }
  explicit operator bool() const { return ok(); }
  errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // "bad_format: model.safetensors: header length 999 runs past the end of the file (12 bytes)"
  std::string to_string() const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(status s) : v_(std::move(s)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  status error() const { return ok() ? status{} : std::get<1>(v_); }

 private:
  std::variant<T, status> v_;
};

inline status make_error(errc c, std::string msg) { return status(c, std::move(msg)); }

}  // namespace razor

#define RAZOR_TRY(expr)                     \
  do {                                      \
    ::razor::status _st = (expr);           \
    if (!_st.ok()) return _st;              \
  } while (0)

#define RAZOR_CONCAT_(a, b) a##b
#define RAZOR_CONCAT(a, b) RAZOR_CONCAT_(a, b)
#define RAZOR_ASSIGN_OR_RETURN_(tmp, lhs, expr) \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return tmp.error();            \
  lhs = std::move(tmp).value()
#define RAZOR_ASSIGN_OR_RETURN(lhs, expr) RAZOR_ASSIGN_OR_RETURN_(RAZOR_CONCAT(_r_, __LINE__), lhs, expr)
