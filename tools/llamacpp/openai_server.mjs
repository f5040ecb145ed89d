// A tiny OpenAI-compatible server around the real llama.cpp (node-llama-cpp, prebuilt CPU binaries, never built
// from source), for tests of `razor eval` only: loopback, one model, one context, requests served one at a time.
//
// Usage: node openai_server.mjs MODEL.gguf PORT [--oracle DIR] [--ctx N] [--threads N] [--name ID]
//   --oracle DIR: folder whose node_modules holds node-llama-cpp (default: $RAZOR_ORACLE_DIR, else the
//                 checkout's .oracle/, else normal resolution).
// Prints "listening <port>" on stdout once the model is loaded and the socket is bound.
//
// GET  /v1/models            -> {"object":"list","data":[{"id":NAME,...}]}
// POST /v1/chat/completions  (non-streaming) -> {id, object:"chat.completion", model, choices:[{index:0,
//      message:{role:"assistant",content}, finish_reason:"length"|"stop"}], usage:{prompt_tokens,
//      completion_tokens,total_tokens}, timings:{prompt_n, prompt_ms, predicted_n, predicted_ms}}
// The timings follow llama-server's meaning, measured here: prompt_ms until the first token arrives (the prompt's
// evaluation and the first sample), predicted_ms from then to the end over predicted_n = the other tokens.
// The messages are rendered as plain text ("System: …\nUser: …\nAssistant:"): the tiny fixtures have no chat
// template. max_tokens, temperature, top_p, top_k and seed are honoured; other fields (chat_template_kwargs, …)
// are accepted and ignored. Each request starts from an empty cache.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

function parseArgs(argv) {
  const a = { model: "", port: -1, oracle: process.env.RAZOR_ORACLE_DIR ?? "", ctx: 0, threads: 0, name: "" };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const next = () => argv[++i];
    if (k === "--oracle") a.oracle = next();
    else if (k === "--ctx") a.ctx = parseInt(next(), 10);
    else if (k === "--threads") a.threads = parseInt(next(), 10);
    else if (k === "--name") a.name = next();
    else if (k.startsWith("--")) throw new Error(`unknown argument ${k}`);
    else pos.push(k);
  }
  if (pos.length !== 2) throw new Error("usage: node openai_server.mjs MODEL.gguf PORT [--oracle DIR] [--ctx N]");
  a.model = pos[0];
  a.port = parseInt(pos[1], 10);
  if (!(a.port >= 0 && a.port < 65536)) throw new Error(`bad port ${pos[1]}`);
  if (!a.oracle) {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const def = path.resolve(here, "..", "..", ".oracle");
    if (fs.existsSync(path.join(def, "node_modules", "node-llama-cpp"))) a.oracle = def;
  }
  if (!a.name) a.name = path.basename(a.model).replace(/\.gguf$/i, "");
  return a;
}

async function loadModule(oracle) {
  if (oracle) {
    const req = createRequire(path.join(path.resolve(oracle), "package.json"));
    return import(req.resolve("node-llama-cpp"));
  }
  return import("node-llama-cpp");
}

function render(messages) {
  const role = { system: "System", user: "User", assistant: "Assistant", tool: "Tool" };
  let s = "";
  for (const m of messages) {
    let c = m?.content ?? "";
    if (Array.isArray(c)) c = c.map((p) => (typeof p === "string" ? p : p?.text ?? "")).join("");
    s += `${role[m?.role] ?? "User"}: ${c}\n`;
  }
  return s + "Assistant:";
}

function send(res, code, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { getLlama, LlamaCompletion, LlamaLogLevel } = await loadModule(args.oracle);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel?.error ?? "error" });
  const model = await llama.loadModel({ modelPath: path.resolve(args.model) });
  const threads = args.threads > 0 ? args.threads
                                    : Math.max(1, (os.availableParallelism?.() ?? os.cpus().length) - 1);
  const contextSize = args.ctx > 0 ? args.ctx : Math.min(model.trainContextSize || 4096, 4096);
  const ctx = await model.createContext({ contextSize, sequences: 1, threads });
  const seq = ctx.getSequence();
  const completion = new LlamaCompletion({ contextSequence: seq });
  const created = Math.floor(Date.now() / 1000);
  let counter = 0;
  let queue = Promise.resolve();  // one context: requests run one after another

  async function chat(rq) {
    if (!Array.isArray(rq.messages) || rq.messages.length === 0) {
      return [400, { error: { message: "messages must be a non-empty array", type: "invalid_request_error" } }];
    }
    const prompt = render(rq.messages);
    const promptTokens = model.tokenize(prompt);
    const room = contextSize - promptTokens.length - 1;
    if (room < 1) {
      return [400, { error: { message: `prompt of ${promptTokens.length} tokens does not fit the context of ` +
                                        `${contextSize}`, type: "invalid_request_error" } }];
    }
    let maxTokens = Number.isInteger(rq.max_tokens) && rq.max_tokens > 0 ? rq.max_tokens : room;
    if (Number.isInteger(rq.max_completion_tokens) && rq.max_completion_tokens > 0) maxTokens = rq.max_completion_tokens;
    const capped = maxTokens > room;
    maxTokens = Math.min(maxTokens, room);
    const opts = { maxTokens, disableContextShift: true };
    if (typeof rq.temperature === "number") opts.temperature = rq.temperature;
    if (typeof rq.top_p === "number") opts.topP = rq.top_p;
    if (typeof rq.top_k === "number") opts.topK = rq.top_k;
    if (typeof rq.seed === "number") opts.seed = rq.seed;
    let generated = 0, firstTokenAt = 0;
    opts.onToken = (t) => {
      if (generated === 0 && t.length > 0) firstTokenAt = performance.now();
      generated += t.length;
    };
    await seq.clearHistory();
    const startedAt = performance.now();
    const r = await completion.generateCompletionWithMeta(promptTokens, opts);
    const endedAt = performance.now();
    if (firstTokenAt === 0) firstTokenAt = endedAt;
    const hitLimit = r.metadata.stopReason === "maxTokens" || (capped && generated >= maxTokens);
    return [200, {
      id: `chatcmpl-${process.pid}-${++counter}`,
      object: "chat.completion",
      created,
      model: rq.model ?? args.name,
      choices: [{ index: 0, message: { role: "assistant", content: r.response },
                  finish_reason: hitLimit ? "length" : "stop" }],
      usage: { prompt_tokens: promptTokens.length, completion_tokens: generated,
               total_tokens: promptTokens.length + generated },
      timings: { prompt_n: promptTokens.length, prompt_ms: firstTokenAt - startedAt,
                 predicted_n: Math.max(0, generated - 1), predicted_ms: endedAt - firstTokenAt },
    }];
  }

  const server = http.createServer((req, res) => {
    const url = (req.url ?? "").split("?")[0].replace(/\/+$/, "");
    if (req.method === "GET" && url === "/v1/models") {
      return send(res, 200, { object: "list", data: [{ id: args.name, object: "model", created, owned_by: "razor" }] });
    }
    if (req.method === "GET" && (url === "/health" || url === "")) return send(res, 200, { status: "ok" });
    if (req.method !== "POST" || url !== "/v1/chat/completions") {
      return send(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: "not_found" } });
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let rq;
      try {
        rq = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (e) {
        return send(res, 400, { error: { message: `malformed JSON: ${e.message}`, type: "invalid_request_error" } });
      }
      if (rq?.stream) {
        return send(res, 400, { error: { message: "streaming is not supported", type: "invalid_request_error" } });
      }
      const job = queue.then(() => chat(rq));
      queue = job.catch(() => {});
      job.then(([code, obj]) => send(res, code, obj),
               (e) => send(res, 500, { error: { message: String(e?.message ?? e), type: "server_error" } }));
    });
  });
  server.listen(args.port, "127.0.0.1", () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  const stop = () => process.exit(0);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  process.stderr.write(`openai_server: ${e?.stack ?? e}\n`);
  process.exit(1);
});
