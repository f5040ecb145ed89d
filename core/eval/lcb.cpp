#include "eval/lcb.h"

#include <zlib.h>

#include <cstring>
#include <random>

#include "util/base64.h"
#include "util/json_limits.h"
#include "util/strformat.h"

namespace razor::eval {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxTestsBytes = size_t(1) << 30;  // decompressed test cases of one problem, at most

// zlib data (RFC 1950) into at most kMaxTestsBytes.
result<std::string> inflate_bounded(std::string_view in, const std::string& what) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return make_error(errc::internal, what + ": zlib could not start");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = uInt(std::min<size_t>(in.size(), UINT32_MAX));
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (out.size() >= kMaxTestsBytes) {
      inflateEnd(&z);
      return make_error(errc::bad_format, what + ": decompresses to more than " +
                                              std::to_string(kMaxTestsBytes >> 20) + " MiB");
    }
    size_t old = out.size();
    out.resize(std::min(kMaxTestsBytes, std::max<size_t>(old * 2, 1 << 16)));
    z.next_out = reinterpret_cast<Bytef*>(out.data() + old);
    z.avail_out = uInt(out.size() - old);
    rc = inflate(&z, Z_NO_FLUSH);
    out.resize(out.size() - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_out != 0) break;  // input exhausted before the end of the stream
    if (rc == Z_BUF_ERROR) rc = Z_OK;
  }
  bool done = rc == Z_STREAM_END;
  std::string msg = z.msg ? z.msg : "truncated stream";
  inflateEnd(&z);
  if (!done) return make_error(errc::bad_format, what + ": not zlib data (" + msg + ")");
  return out;
}

uint64_t le(std::string_view b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n; i-- > 0;) v = v << 8 | uint8_t(b[at + i]);
  return v;
}

// Output lines with trailing whitespace stripped and trailing empty lines dropped.
std::vector<std::string_view> norm_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t nl = s.find('\n', pos);
    std::string_view line = s.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    size_t end = line.find_last_not_of(" \t\r\f\v");
    lines.push_back(end == std::string_view::npos ? std::string_view{} : line.substr(0, end + 1));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

std::string test_field(const json& t, const char* k) {
  auto it = t.find(k);
  if (it == t.end() || it->is_null()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// The functional driver: tests as base64 JSON (no quoting of the model's or the dataset's text), the verdict as
// the last line, tagged with `nonce`.
std::string functional_driver(const std::string& func_name, const json& tests, int n, double per_test_s,
                              const std::string& nonce) {
  json t = json::array();
  for (int i = 0; i < n; ++i) t.push_back({test_field(tests[i], "input"), test_field(tests[i], "output")});
  int alarm_s = std::max(1, int(per_test_s + 0.5));
  return "\n\n# ---- razor: LiveCodeBench functional driver ----\n"
         "import json as _rz_json, base64 as _rz_b64, signal as _rz_signal, sys as _rz_sys\n"
         "_RZ_TESTS = _rz_json.loads(_rz_b64.b64decode('" + base64_encode(t.dump()) + "').decode('utf-8'))\n"
         "_RZ_FN = _rz_json.loads(_rz_b64.b64decode('" + base64_encode(json(func_name).dump()) + "').decode('utf-8'))\n"
         "def _rz_args(s):\n"
         "    try:\n"
         "        return [_rz_json.loads(s)]\n"
         "    except Exception:\n"
         "        pass\n"
         "    try:\n"
         "        return [_rz_json.loads(l) for l in s.split('\\n') if l.strip()]\n"
         "    except Exception:\n"
         "        return [s]\n"
         "def _rz_expected(s):\n"
         "    try:\n"
         "        return _rz_json.loads(s)\n"
         "    except Exception:\n"
         "        return s\n"
         "def _rz_eq(a, b):\n"
         "    if isinstance(a, bool) or isinstance(b, bool):\n"
         "        return isinstance(a, bool) and isinstance(b, bool) and a == b\n"
         "    if isinstance(a, (int, float)) and isinstance(b, (int, float)):\n"
         "        return abs(a - b) <= 1e-6\n"
         "    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):\n"
         "        return len(a) == len(b) and all(_rz_eq(x, y) for x, y in zip(a, b))\n"
         "    return a == b\n"
         "class _RzTimeout(BaseException):\n"
         "    pass\n"
         "def _rz_alarm(signum, frame):\n"
         "    raise _RzTimeout()\n"
         "def _rz_main():\n"
         "    _rz_signal.signal(_rz_signal.SIGALRM, _rz_alarm)\n"
         "    for i, (inp, out) in enumerate(_RZ_TESTS):\n"
         "        try:\n"
         "            _rz_signal.alarm(" + std::to_string(alarm_s) + ")\n"
         "            got = getattr(Solution(), _RZ_FN)(*_rz_args(inp))\n"
         "            _rz_signal.alarm(0)\n"
         "        except _RzTimeout:\n"
         "            return 'FAIL %d timeout' % i\n"
         "        except BaseException as e:\n"
         "            _rz_signal.alarm(0)\n"
         "            return 'FAIL %d %s' % (i, type(e).__name__)\n"
         "        if not _rz_eq(got, _rz_expected(out)):\n"
         "            return 'FAIL %d wrong answer' % i\n"
         "    return 'PASS'\n"
         "_rz_verdict = _rz_main()\n"
         "_rz_sys.stdout.flush()\n"
         "print('\\n" + nonce + " ' + _rz_verdict)\n";
}

}  // namespace

result<std::string> unpickle_str(std::string_view b, const std::string& what) {
  auto bad = [&](size_t at, const std::string& why) {
    return make_error(errc::bad_format, what + ": pickle offset " + std::to_string(at) + ": " + why);
  };
  std::optional<std::string> value;
  size_t i = 0;
  while (i < b.size()) {
    size_t at = i;
    uint8_t op = uint8_t(b[i++]);
    auto need = [&](size_t n) { return b.size() - i >= n; };
    auto take_str = [&](int len_bytes) -> status {
      if (!need(size_t(len_bytes))) return bad(at, "truncated length");
      uint64_t n = le(b, i, len_bytes);
      i += size_t(len_bytes);
      if (n > b.size() - i) return bad(at, "a string of " + std::to_string(n) + " bytes runs past the end");
      if (value) return bad(at, "a second value (only one str is accepted)");
      value = std::string(b.substr(i, size_t(n)));
      i += size_t(n);
      return {};
    };
    switch (op) {
      case 0x80:  // PROTO
        if (!need(1) || uint8_t(b[i]) > 5) return bad(at, "unknown pickle protocol");
        ++i;
        break;
      case 0x95:  // FRAME: a length, the frame's content follows inline
        if (!need(8)) return bad(at, "truncated frame length");
        i += 8;
        break;
      case 0x8c: RAZOR_TRY(take_str(1)); break;  // SHORT_BINUNICODE
      case 'X': RAZOR_TRY(take_str(4)); break;   // BINUNICODE
      case 0x8d: RAZOR_TRY(take_str(8)); break;  // BINUNICODE8
      case 0x94: break;                          // MEMOIZE
      case 'q':                                  // BINPUT
        if (!need(1)) return bad(at, "truncated memo index");
        i += 1;
        break;
      case 'r':  // LONG_BINPUT
        if (!need(4)) return bad(at, "truncated memo index");
        i += 4;
        break;
      case '.':  // STOP
        if (!value) return bad(at, "STOP with no str on the stack");
        if (i != b.size()) return bad(i, "bytes after STOP");
        return std::move(*value);
      default:
        return bad(at, "opcode " + strformat("0x%02x", unsigned(op)) +
                           " is outside the accepted subset (a pickle holding one str; nothing else is read)");
    }
  }
  return bad(b.size(), "no STOP opcode");
}

result<json> decode_lcb_tests(std::string_view field, const std::string& what) {
  size_t first = field.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return json::array();
  std::string text;
  if (field[first] == '[') {
    text = std::string(field);
  } else {
    RAZOR_ASSIGN_OR_RETURN(std::string raw, base64_decode(field, what));
    RAZOR_ASSIGN_OR_RETURN(std::string inflated, inflate_bounded(raw, what));
    if (!inflated.empty() && uint8_t(inflated[0]) == 0x80) {
      RAZOR_ASSIGN_OR_RETURN(text, unpickle_str(inflated, what));
    } else {
      text = std::move(inflated);
    }
  }
  json_limits lim;
  lim.max_bytes = kMaxTestsBytes;
  RAZOR_ASSIGN_OR_RETURN(json tests, parse_json(text, what, lim));
  if (!tests.is_array()) return make_error(errc::bad_format, what + ": test cases are not a JSON list");
  for (size_t k = 0; k < tests.size(); ++k)
    if (!tests[k].is_object() || !tests[k].contains("input") || !tests[k].contains("output"))
      return make_error(errc::bad_format, what + ": test " + std::to_string(k) + " has no input / output");
  return tests;
}

std::string_view lcb_preamble() {
  return "import sys, math, collections, heapq, bisect, itertools, functools, operator, re, string, random, copy\n"
         "from typing import *\n"
         "from collections import *\n"
         "from math import *\n"
         "from functools import *\n"
         "from itertools import *\n"
         "from heapq import *\n"
         "from bisect import *\n"
         "sys.setrecursionlimit(1000000)\n\n";
}

lcb_verdict run_lcb(const std::string& code, bool functional, const std::string& func_name, const json& tests,
                    const sandbox_limits& per_test) {
  lcb_verdict v;
  v.tests = int(std::min<size_t>(tests.is_array() ? tests.size() : 0, kLcbMaxTests));
  if (v.tests == 0) {
    v.detail = "no tests";
    return v;
  }
  std::string program = std::string(lcb_preamble()) + code;
  if (functional) {
    std::random_device rd;
    std::string nonce = "razor-verdict-" + std::to_string(rd()) + std::to_string(rd());
    sandbox_limits whole = per_test;
    whole.timeout_s = std::min(per_test.timeout_s * v.tests + 30, kLcbOuterTimeoutCap);
    auto r = run_python(program + functional_driver(func_name, tests, v.tests, per_test.timeout_s, nonce), whole);
    size_t p = r.stdout_text.rfind(nonce + " ");
    std::string verdict = p == std::string::npos ? "" : r.stdout_text.substr(p + nonce.size() + 1);
    if (size_t nl = verdict.find('\n'); nl != std::string::npos) verdict.resize(nl);
    if (!r.error.empty()) v.detail = r.error;
    else if (r.timed_out) v.detail = "timeout (the whole run)";
    else if (verdict == "PASS" && r.exit_code == 0) v.passed = true;
    else if (verdict.rfind("FAIL ", 0) == 0) {
      v.failed_test = std::atoi(verdict.c_str() + 5);
      v.detail = verdict.substr(verdict.find(' ', 5) + 1);
    } else {
      v.detail = "no verdict (exit " + std::to_string(r.exit_code) + "): " + r.output_tail;
    }
    return v;
  }
  for (int i = 0; i < v.tests; ++i) {
    auto r = run_python(program, per_test, test_field(tests[i], "input"));
    bool ok = r.error.empty() && r.passed && norm_lines(r.stdout_text) == norm_lines(test_field(tests[i], "output"));
    if (!ok) {
      v.failed_test = i;
      v.detail = !r.error.empty() ? r.error
                 : r.timed_out    ? "timeout"
                 : !r.passed      ? "exit " + std::to_string(r.exit_code) + ": " + r.output_tail
                                  : "wrong answer";
      return v;
    }
  }
  v.passed = true;
  return v;
}

}  // namespace razor::eval
