// Loads a GGUF file in the real llama.cpp (node-llama-cpp, prebuilt CPU binaries, never built from source)
// and measures perplexity with the protocol of shared/models/README.md:
//   the text is split on "\n\n\n"; each piece is tokenized with the file's own tokenizer (no special tokens)
//   and followed by the end-of-text token; windows of W tokens (i*W .. i*W+W-1) predict the next W tokens;
//   every window starts with an empty cache; ppl = exp(mean NLL) over the first N windows.
// Exact mode (default): flash attention off, F32 KV cache.
//
// Usage: node validate.mjs --model FILE.gguf --text TEXT.txt [--windows 200] [--window 256]
//                          [--batch 256] [--threads 0] [--ctx N] [--fast]
// Prints one JSON line on stdout: {"ok":true,"ppl":...,"windows":N,"predictions":...,"nll":...,...}
// or {"ok":false,"error":"..."} with exit code 1. llama.cpp can abort() on a malformed file: run this in a
// child process (razor validate-gguf does).
// Needs NODE_PATH or the script's cwd to resolve node-llama-cpp (razor passes the oracle's node_modules).
import fs from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";

function parseArgs(argv) {
  const a = { windows: 200, window: 256, batch: 256, threads: 0, ctx: 0, fast: false, oracle: "" };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const next = () => argv[++i];
    if (k === "--model") a.model = next();
    else if (k === "--text") a.text = next();
    else if (k === "--windows") a.windows = parseInt(next(), 10);
    else if (k === "--window") a.window = parseInt(next(), 10);
    else if (k === "--batch") a.batch = parseInt(next(), 10);
    else if (k === "--threads") a.threads = parseInt(next(), 10);
    else if (k === "--ctx") a.ctx = parseInt(next(), 10);
    else if (k === "--oracle") a.oracle = next();
    else if (k === "--fast") a.fast = true;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model || !a.text) throw new Error("--model and --text are required");
  return a;
}

function out(obj, code) {
  process.stdout.write(JSON.stringify(obj) + "\n");
  process.exitCode = code;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  // Resolve node-llama-cpp from the oracle folder when given, else normally.
  let mod;
  if (args.oracle) {
    const req = createRequire(path.join(path.resolve(args.oracle), "package.json"));
    mod = await import(req.resolve("node-llama-cpp"));
  } else {
    mod = await import("node-llama-cpp");
  }
  const { getLlama, LlamaLogLevel } = mod;
  const t0 = Date.now();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel?.error ?? "error" });
  const model = await llama.loadModel({ modelPath: path.resolve(args.model) });
  const tLoad = Date.now() - t0;

  const W = args.window, N = args.windows;
  const need = N * W + 1;
  const eos = model.tokens?.eos ?? 0;
  const text = fs.readFileSync(args.text, "utf8");
  const tokens = [];
  for (const piece of text.split("\n\n\n")) {
    for (const t of model.tokenize(piece, false)) tokens.push(t);
    tokens.push(eos);
    if (tokens.length >= need) break;
  }
  const nWin = Math.min(N, Math.floor((tokens.length - 1) / W));
  if (nWin < 1) throw new Error(`the text gives only ${tokens.length} tokens, fewer than one window of ${W} + 1`);

  const ctxOpts = { contextSize: Math.max(W, args.ctx), batchSize: Math.min(args.batch, W), sequences: 1 };
  // llama.cpp oversubscribes a small shared machine badly; leave one core free by default.
  ctxOpts.threads = args.threads > 0 ? args.threads : Math.max(1, (os.availableParallelism?.() ?? os.cpus().length) - 1);
  if (!args.fast) {
    ctxOpts.flashAttention = false;
    ctxOpts.experimentalKvCacheKeyType = "F32";
    ctxOpts.experimentalKvCacheValueType = "F32";
  }
  const ctx = await model.createContext(ctxOpts);
  const seq = ctx.getSequence();
  const t1 = Date.now();
  let nll = 0, count = 0;
  const perWindow = [];
  for (let w = 0; w < nWin; w++) {
    await seq.clearHistory();
    const win = tokens.slice(w * W, w * W + W);
    const res = await seq.controlledEvaluate(win.map((t) => [t, { generateNext: { probabilities: true } }]));
    let wn = 0;
    for (let i = 0; i < W; i++) {
      const target = tokens[w * W + i + 1];
      const p = res[i]?.next?.probabilities?.get(target);
      if (p === undefined) throw new Error(`no probability for position ${i} of window ${w}`);
      const l = -Math.log(p);
      nll += l;
      wn += l;
      count++;
    }
    perWindow.push(wn / W);
  }
  const tEval = Date.now() - t1;
  out({
    ok: true,
    ppl: Math.exp(nll / count),
    nll: nll / count,
    windows: nWin,
    window: W,
    predictions: count,
    exact: !args.fast,
    n_vocab: model.tokens?.vocabSize ?? null,
    first_tokens: tokens.slice(0, 8),
    load_ms: tLoad,
    eval_ms: tEval,
    window_nll: perWindow,
  }, 0);
  await ctx.dispose();
  await model.dispose();
}

main().catch((e) => out({ ok: false, error: String(e?.message ?? e) }, 1));
