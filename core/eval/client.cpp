#include "eval/client.h"
#include "util/json_limits.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace razor::eval {
namespace {

using json = nlohmann::json;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t on_write(char* p, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(p, size * n);
  return size * n;
}

int on_xfer(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* f = static_cast<const std::function<bool()>*>(user);
  return (*f)() ? 1 : 0;  // non-zero aborts the transfer (CURLE_ABORTED_BY_CALLBACK)
}

std::string excerpt(const std::string& body, size_t n = 300) {
  std::string e = body.substr(0, n);
  std::replace(e.begin(), e.end(), '\n', ' ');
  if (body.size() > n) e += "...";
  return e;
}

}  // namespace

std::string chat_response::full_text() const {
  if (reasoning.empty()) return content;
  if (content.empty()) return reasoning;
  return reasoning + "</think>" + content;
}

std::string chat_request_json(const chat_request& r) {
  json content = r.prompt;
  if (!r.images.empty()) {  // OpenAI's content parts: the images first, then the text (the seed's order)
    content = json::array();
    for (const std::string& url : r.images) content.push_back({{"type", "image_url"}, {"image_url", {{"url", url}}}});
    content.push_back({{"type", "text"}, {"text", r.prompt}});
  }
  json j = {{"model", r.model},
            {"messages", json::array({{{"role", "user"}, {"content", content}}})},
            {"max_tokens", r.max_tokens},
            {"temperature", r.temperature},
            {"top_p", r.top_p},
            {"top_k", r.top_k},
            {"stream", false},
            {"chat_template_kwargs", {{"enable_thinking", r.enable_thinking}}}};
  if (r.seed) j["seed"] = *r.seed;
  if (r.ignore_eos) j["ignore_eos"] = true;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

result<chat_response> parse_chat_response(const std::string& body, const std::string& url) {
  json_limits lim;
  lim.max_bytes = size_t(1) << 30;
  lim.code = errc::external;
  auto parsed = parse_json(body, url, lim);
  if (!parsed.ok())
    return make_error(errc::external, "malformed JSON from " + parsed.error().message() + ": " + excerpt(body, 200));
  json& j = *parsed;
  auto bad = [&](const std::string& why) {
    return make_error(errc::external, "unexpected reply from " + url + " (" + why + "): " + excerpt(body, 200));
  };
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty())
    return bad("no choices");
  const json& c = j["choices"][0];
  if (!c.is_object() || !c.contains("message") || !c["message"].is_object()) return bad("no choices[0].message");
  chat_response r;
  const json& m = c["message"];
  if (m.contains("content") && m["content"].is_string()) r.content = m["content"].get<std::string>();
  if (m.contains("reasoning_content") && m["reasoning_content"].is_string())
    r.reasoning = m["reasoning_content"].get<std::string>();
  if (c.contains("finish_reason") && c["finish_reason"].is_string())
    r.finish_reason = c["finish_reason"].get<std::string>();
  if (j.contains("usage") && j["usage"].is_object()) {
    const json& u = j["usage"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
      r.completion_tokens = u["completion_tokens"].get<int>();
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer())
      r.prompt_tokens = u["prompt_tokens"].get<int>();
  }
  if (j.contains("timings") && j["timings"].is_object()) {
    const json& t = j["timings"];
    auto num = [&](const char* k) { return t.contains(k) && t[k].is_number() ? t[k].get<double>() : -1.0; };
    if (num("prompt_n") >= 0 && num("prompt_ms") >= 0 && num("predicted_n") >= 0 && num("predicted_ms") >= 0)
      r.timings = server_timings{int(num("prompt_n")), int(num("predicted_n")), num("prompt_ms"), num("predicted_ms")};
  }
  return r;
}

client::client(client_options o) : opt_(std::move(o)) {
  global_init();
  base_ = opt_.endpoint;
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
  if (base_.size() < 3 || base_.compare(base_.size() - 3, 3, "/v1") != 0) base_ += "/v1";
  curl_ = curl_easy_init();
}

client::~client() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

result<client::http_reply> client::send(const std::string& path, const std::string* post_body, int* attempts) {
  CURL* h = static_cast<CURL*>(curl_);
  if (!h) return make_error(errc::internal, "curl_easy_init failed");
  std::string url = base_ + path;
  status last;
  for (int attempt = 0; attempt <= opt_.retries; ++attempt) {
    if (attempt > 0) {
      double wait = std::min(30.0, opt_.backoff_s * double(1 << std::min(attempt - 1, 10)));
      auto until = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(wait));
      while (std::chrono::steady_clock::now() < until) {
        if (opt_.cancelled && opt_.cancelled()) return make_error(errc::cancelled, "cancelled: " + url);
        std::this_thread::sleep_until(std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
      }
    }
    if (opt_.cancelled && opt_.cancelled()) return make_error(errc::cancelled, "cancelled: " + url);
    if (attempts) *attempts = attempt + 1;
    curl_easy_reset(h);
    http_reply rep;
    curl_slist* hdr = nullptr;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    std::string auth;
    if (!opt_.api_key.empty()) {
      auth = "Authorization: Bearer " + opt_.api_key;
      hdr = curl_slist_append(hdr, auth.c_str());
    }
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &rep.body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, long(opt_.timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, long(opt_.connect_timeout_s * 1000));
    if (opt_.cancelled) {
      curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xfer);
      curl_easy_setopt(h, CURLOPT_XFERINFODATA, &opt_.cancelled);
      curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (post_body) {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body->data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(post_body->size()));
    }
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    if (rc == CURLE_ABORTED_BY_CALLBACK) return make_error(errc::cancelled, "cancelled: " + url);
    if (rc != CURLE_OK) {
      std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
      bool transient = rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING ||
                       rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_COULDNT_RESOLVE_HOST;
      last = make_error(errc::external, "cannot reach " + url + ": " + why + " (after " +
                                            std::to_string(attempt + 1) + " attempt" + (attempt ? "s" : "") + ")");
      if (!transient) return last;
      continue;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rep.status);
    if (rep.status >= 200 && rep.status < 300) return rep;
    last = make_error(errc::external, "HTTP " + std::to_string(rep.status) + " from " + url + ": " + excerpt(rep.body));
    if (rep.status != 429 && rep.status < 500) return last;
  }
  return last;
}

result<chat_response> client::chat(const chat_request& r) {
  std::string body = chat_request_json(r);
  int attempts = 1;
  const auto t0 = std::chrono::steady_clock::now();
  RAZOR_ASSIGN_OR_RETURN(http_reply rep, send("/chat/completions", &body, &attempts));
  auto resp = parse_chat_response(rep.body, base_ + "/chat/completions");
  if (resp.ok()) {
    resp->attempts = attempts;
    resp->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return resp;
}

result<std::vector<std::string>> client::models() {
  RAZOR_ASSIGN_OR_RETURN(http_reply rep, send("/models", nullptr, nullptr));
  std::string url = base_ + "/models";
  json_limits lim;
  lim.code = errc::external;
  auto parsed = parse_json(rep.body, url, lim);
  if (!parsed.ok())
    return make_error(errc::external, "malformed JSON from " + parsed.error().message() + ": " + excerpt(rep.body, 200));
  json& j = *parsed;
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
    return make_error(errc::external, "unexpected reply from " + url + " (no data array): " + excerpt(rep.body, 200));
  std::vector<std::string> ids;
  for (auto& m : j["data"])
    if (m.is_object() && m.contains("id") && m["id"].is_string()) ids.push_back(m["id"].get<std::string>());
  return ids;
}

}  // namespace razor::eval
