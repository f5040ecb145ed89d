// A client for OpenAI-compatible inference servers (llama-server, vLLM, node-llama-cpp wrappers): chat
// completions (non-streaming) and GET /v1/models, over libcurl. One client owns one curl easy handle and is
// used from one thread; run N clients on N std::jthread workers for N requests in flight (eval/runner.h).
//
// Retries: a connect failure, a timeout, HTTP 429 and HTTP 5xx are retried with exponential backoff
// (backoff_s * 2^attempt, capped at 30 s) up to `retries` times. Anything else fails at once. Errors come back as
// razor::status with code `external` and a message that names the URL and the cause: "cannot reach
// http://127.0.0.1:9/v1/chat/completions: Couldn't connect to server", "HTTP 400 from ...: <first 300 bytes of
// the body>", "malformed JSON from ...: <parse error>".
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::eval {

struct client_options {
  std::string endpoint;       // "http://127.0.0.1:8080" ("/v1" appended when the URL does not end with it)
  std::string api_key;        // sent as "Authorization: Bearer <key>" when non-empty
  double timeout_s = 3600;    // whole request (a 64k-token thinking answer takes minutes)
  double connect_timeout_s = 10;
  int retries = 4;
  double backoff_s = 1.0;
  // Polled during a request (libcurl's transfer callback, several times a second) and while waiting to retry;
  // true aborts the request with errc::cancelled. May be empty. Called from the client's thread.
  std::function<bool()> cancelled;
};

struct chat_request {
  std::string model;
  std::string prompt;              // one user message, no system prompt (the seed's protocol)
  std::vector<std::string> images; // image URLs (data:image/png;base64,...), sent before the text as image_url parts
  int max_tokens = 32768;
  double temperature = 0.6, top_p = 0.95;
  int top_k = 20;
  std::optional<int> seed = 0;     // the seed's llama.cpp harness sends seed 0
  bool enable_thinking = true;     // chat_template_kwargs.enable_thinking
  bool ignore_eos = false;         // sent as "ignore_eos": true (llama-server, vLLM): generate max_tokens
};

// llama-server's "timings" object of a response (absent from vLLM's and most other servers').
struct server_timings {
  int prompt_n = 0, predicted_n = 0;     // tokens evaluated (the prompt's not in the cache) / generated
  double prompt_ms = 0, predicted_ms = 0;
};

struct chat_response {
  std::string content;             // message.content
  std::string reasoning;           // message.reasoning_content (servers that split the thought out)
  std::string finish_reason;       // "stop", "length", ...
  int completion_tokens = 0, prompt_tokens = 0;
  int attempts = 1;                // requests sent, retries included
  std::optional<server_timings> timings;
  double seconds = 0;              // wall time of the request that answered (the client's clock)
  // The text the seed graded: the thought, "</think>", the answer (the thought alone when no answer came).
  std::string full_text() const;
};

// The body sent for `r` (exposed for tests).
std::string chat_request_json(const chat_request& r);
// Parses a /v1/chat/completions response body.
result<chat_response> parse_chat_response(const std::string& body, const std::string& url);

class client {
 public:
  explicit client(client_options o);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  result<chat_response> chat(const chat_request& r);
  result<std::vector<std::string>> models();  // ids from GET /v1/models
  const std::string& base_url() const { return base_; }

 private:
  struct http_reply {
    long status = 0;
    std::string body;
  };
  result<http_reply> send(const std::string& path, const std::string* post_body, int* attempts);
  client_options opt_;
  std::string base_;
  void* curl_ = nullptr;
};

}  // namespace razor::eval
