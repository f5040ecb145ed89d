// Loads a GGUF file in the real llama.cpp (node-llama-cpp, prebuilt CPU binaries, never built from source)
// and measures perplexity with the protocol of resources/models/README.md:
//   the text is split on "\n\n\n"; each piece is tokenized with the file's own tokenizer (no special tokens)
//   and followed by the end-of-text token; windows of W tokens (i*W .. i*W+W-1) predict the next W tokens;
//   every window starts with an empty cache; ppl = exp(mean NLL) over the first N windows.
// Exact mode (default): flash attention off, F32 KV cache.
//
// Usage: node validate.mjs --model FILE.gguf --text TEXT.txt [--windows 200] [--window 256]
//                          [--batch 256] [--threads 0] [--ctx N] [--fast] [--generate N]
//        node validate.mjs --model FILE.gguf --logprobs-in IDS.bin --logprobs-out LP.bin [--fast ...]
// --generate N: after scoring, greedily generate N tokens (temperature 0) after the first 16 tokens of the
//   text's token stream, from an empty cache; the answer gets "generated" (text) and "generated_ids".
// --logprobs-in/--logprobs-out (no --text): IDS.bin holds int32 token ids (little endian); they are fed as one
//   sequence from an empty cache (batch = their count, so the whole sequence is one llama_decode) and LP.bin
//   receives float32 [n_tokens][n_vocab]: log p(v | ids[0..i]) = log of llama.cpp's softmax of the raw logits
//   (no sampling options, so node-llama-cpp's probabilities are exactly that softmax), -Infinity where the
//   probability underflowed to 0. --n-vocab V gives the row length (default: largest id in the distribution + 1).
// Prints one JSON line on stdout: {"ok":true,"ppl":...,"windows":N,"predictions":...,"nll":...,...}
// or {"ok":false,"error":"..."} with exit code 1. llama.cpp can abort() on a malformed file: run this in a
// child process (razor validate-gguf does).
// Needs NODE_PATH or the script's cwd to resolve node-llama-cpp (razor passes the oracle's node_modules).
import fs from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";

function parseArgs(argv) {
  const a = { windows: 200, window: 256, batch: 256, threads: 0, ctx: 0, fast: false, oracle: "", generate: 0,
              lpIn: "", lpOut: "", nVocab: 0 };
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
    else if (k === "--generate") a.generate = parseInt(next(), 10);
    else if (k === "--logprobs-in") a.lpIn = next();
    else if (k === "--logprobs-out") a.lpOut = next();
    else if (k === "--n-vocab") a.nVocab = parseInt(next(), 10);
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model) throw new Error("--model is required");
  if (!!a.lpIn !== !!a.lpOut) throw new Error("--logprobs-in and --logprobs-out go together");
  if (!a.text && !a.lpIn) throw new Error("--text (perplexity) or --logprobs-in/--logprobs-out is required");
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

  const threads = args.threads > 0 ? args.threads : Math.max(1, (os.availableParallelism?.() ?? os.cpus().length) - 1);
  const exactOpts = (o) => {
    if (!args.fast) {
      o.flashAttention = false;
      o.experimentalKvCacheKeyType = "F32";
      o.experimentalKvCacheValueType = "F32";
    }
    return o;
  };
  if (args.lpIn) {
    const buf = fs.readFileSync(args.lpIn);
    const ids = Array.from(new Int32Array(buf.buffer, buf.byteOffset, Math.floor(buf.length / 4)));
    if (ids.length < 1) throw new Error(`${args.lpIn}: no token ids`);
    // node-llama-cpp exposes no vocabulary size: --n-vocab, else the largest id the distribution names + 1.
    let nVocab = args.nVocab;
    const ctx = await model.createContext(exactOpts({ contextSize: Math.max(ids.length, args.ctx, 32),
                                                      batchSize: ids.length, sequences: 1, threads }));
    const seq = ctx.getSequence();
    const t1 = Date.now();
    const res = await seq.controlledEvaluate(ids.map((t) => [t, { generateNext: { probabilities: true } }]));
    if (!(nVocab > 0)) for (const [tok] of res[0]?.next?.probabilities ?? []) nVocab = Math.max(nVocab, tok + 1);
    const lp = new Float32Array(ids.length * nVocab);
    let zeros = 0;
    for (let i = 0; i < ids.length; i++) {
      const probs = res[i]?.next?.probabilities;
      if (!probs) throw new Error(`no probabilities for position ${i}`);
      const row = lp.subarray(i * nVocab, (i + 1) * nVocab);
      row.fill(-Infinity);
      for (const [tok, p] of probs) {
        if (tok >= 0 && tok < nVocab) row[tok] = p > 0 ? Math.log(p) : -Infinity;
      }
      for (let v = 0; v < nVocab; v++) if (row[v] === -Infinity) zeros++;
    }
    fs.writeFileSync(args.lpOut, Buffer.from(lp.buffer, lp.byteOffset, lp.byteLength));
    out({ ok: true, mode: "logprobs", n_tokens: ids.length, n_vocab: nVocab, zero_probabilities: zeros,
          exact: !args.fast, load_ms: tLoad, eval_ms: Date.now() - t1 }, 0);
    await ctx.dispose();
    await model.dispose();
    return;
  }

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
  ctxOpts.threads = threads;
  exactOpts(ctxOpts);
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
  let generated = null, generatedIds = null;
  if (args.generate > 0) {
    await seq.clearHistory();
    const prompt = tokens.slice(0, 16);
    generatedIds = [];
    for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
      generatedIds.push(t);
      if (generatedIds.length >= args.generate) break;
    }
    generated = model.detokenize(generatedIds);
  }
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
    generated,
    generated_ids: generatedIds,
    prompt_ids: args.generate > 0 ? tokens.slice(0, 16) : null,
  }, 0);
  await ctx.dispose();
  await model.dispose();
}

main().catch((e) => out({ ok: false, error: String(e?.message ?? e) }, 1));
