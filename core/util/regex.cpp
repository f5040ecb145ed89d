#include "util/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>

namespace razor {

std::string printable_excerpt(std::string_view s, size_t max_bytes) {
  std::string out;
  const size_t n = std::min(s.size(), max_bytes);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(char(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > n) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

struct regex::impl {
  std::string pattern;
  pcre2_code* code = nullptr;
  pcre2_match_context* mctx = nullptr;
  ~impl() {
    if (mctx) pcre2_match_context_free(mctx);
    if (code) pcre2_code_free(code);
  }
};

result<regex> regex::compile(std::string_view pattern, const regex_options& opt) {
  auto quoted = [&] { return "'" + printable_excerpt(pattern) + "'"; };
  if (pattern.size() > opt.max_pattern_bytes)
    return make_error(errc::invalid_argument, "regex " + quoted() + " is longer than " +
                                                  std::to_string(opt.max_pattern_bytes) + " bytes");
  auto p = std::make_shared<impl>();
  p->pattern = std::string(pattern);
  pcre2_compile_context* cctx = pcre2_compile_context_create(nullptr);
  if (!cctx) return make_error(errc::internal, "regex: out of memory");
  pcre2_set_max_pattern_length(cctx, opt.max_pattern_bytes);
  pcre2_set_parens_nest_limit(cctx, opt.max_nesting);
  uint32_t flags = 0;
  if (opt.utf) flags |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  if (opt.ecmascript) flags |= PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS | PCRE2_DOLLAR_ENDONLY;
  int err = 0;
  PCRE2_SIZE off = 0;
  p->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), flags, &err, &off, cctx);
  pcre2_compile_context_free(cctx);
  if (!p->code)
    return make_error(errc::invalid_argument, "invalid regex " + quoted() + ": " + pcre2_message(err) +
                                                  " at byte " + std::to_string(off));
  // Best effort: where JIT is unavailable the interpreter runs, under the same limits.
  pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);
  p->mctx = pcre2_match_context_create(nullptr);
  if (!p->mctx) return make_error(errc::internal, "regex: out of memory");
  pcre2_set_match_limit(p->mctx, opt.match_limit);
  pcre2_set_depth_limit(p->mctx, opt.depth_limit);
  pcre2_set_heap_limit(p->mctx, opt.heap_limit_kib);
  regex r;
  r.p_ = std::move(p);
  return r;
}

const std::string& regex::pattern() const {
  static const std::string none;
  return p_ ? p_->pattern : none;
}

result<std::optional<regex_span>> regex::find(std::string_view subject, size_t start) const {
  if (!p_) return make_error(errc::internal, "regex: matching with an empty regex");
  if (start > subject.size()) return std::optional<regex_span>();
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  if (!md) return make_error(errc::internal, "regex: out of memory");
  auto run = [&](uint32_t options) {
    return pcre2_match(p_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), start, options, md,
                       p_->mctx);
  };
  int rc = run(0);
  // The JIT's own stack (32 KiB) is smaller than what a long subject may need; the interpreter keeps its
  // backtracking on the heap, bounded by heap_limit.
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = run(PCRE2_NO_JIT);
  std::optional<regex_span> span;
  if (rc >= 0) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    span = regex_span{size_t(ov[0]), size_t(ov[1])};
  }
  pcre2_match_data_free(md);
  if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH) return span;
  const std::string what = "regex '" + printable_excerpt(p_->pattern) + "' on '" + printable_excerpt(subject) + "'";
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
      rc == PCRE2_ERROR_JIT_STACKLIMIT)
    return make_error(errc::invalid_argument, what + ": the pattern backtracks too much (" + pcre2_message(rc) +
                                                  "); simplify it (nested quantifiers such as (.+)+ are the usual "
                                                  "cause)");
  return make_error(errc::invalid_argument, what + ": " + pcre2_message(rc));
}

result<bool> regex::search(std::string_view subject) const {
  RAZOR_ASSIGN_OR_RETURN(std::optional<regex_span> m, find(subject, 0));
  return m.has_value();
}

}  // namespace razor
