// Loads a GGUF file in the real llama.cpp (node-llama-cpp, prebuilt CPU binaries, never built from source)
// and measures perplexity with the protocol of resources/models/README.md:
//   the text is split on "\n\n\n"; each piece is tokenized with the file's own tokenizer (no special tokens)
//   and followed by the end-of-text token; windows of W tokens (i*W .. i*W+W-1) predict the next W tokens;
//   every window starts with an empty cache; ppl = exp(mean NLL) over the first N windows.
// Exact mode (default): flash attention off, F32 KV cache.
// --first-window F scores windows F .. F+N-1 instead (held-out windows of a text split into calibration and
// evaluation parts).
// --ref REF.gguf (the unquantized export): REF is loaded beside FILE and both score every window; per predicted
//   position KL(REF || FILE) = sum over the whole vocabulary of p_ref (log p_ref - log p_file), from
//   llama.cpp's softmax probabilities (float32; a p_file that underflowed to 0 where p_ref > 0 is taken as
//   the smallest float32, 1.4e-45, and counted in kl_clamped). The answer gets "kl" with the statistics
//   llama-perplexity --kl-divergence prints (tools/perplexity): mean and its uncertainty, maximum, 99.9 %,
//   99 %, 95 %, 90 %, median, 10 %, 5 %, 1 %, minimum (percentiles interpolated between sorted values as
//   llama-perplexity does), "same top p" (share of positions whose argmax agrees, with uncertainty), the
//   reference's perplexity, ln(PPL/PPL_ref), Δp = p_file(target) - p_ref(target) (mean, RMS) and the mean KL
//   of each window. Both files must tokenize the text identically.
//
// Usage: node validate.mjs --model FILE.gguf --text TEXT.txt [--windows 200] [--window 256] [--first-window 0]
//                          [--ref REF.gguf] [--batch 256] [--threads 0] [--ctx N] [--fast] [--generate N]
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
              lpIn: "", lpOut: "", nVocab: 0, firstWindow: 0, ref: "" };
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
    else if (k === "--first-window") a.firstWindow = parseInt(next(), 10);
    else if (k === "--ref") a.ref = next();
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model) throw new Error("--model is required");
  if (!!a.lpIn !== !!a.lpOut) throw new Error("--logprobs-in and --logprobs-out go together");
  if (!a.text && !a.lpIn) throw new Error("--text (perplexity) or --logprobs-in/--logprobs-out is required");
  if (!(a.firstWindow >= 0)) throw new Error("--first-window must be >= 0");
  if (a.ref && a.lpIn) throw new Error("--ref goes with --text");
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

  const W = args.window, N = args.windows, F = args.firstWindow;
  const need = (F + N) * W + 1;
  const tokenize = (m) => {
    const eos = m.tokens?.eos ?? 0;
    const text = fs.readFileSync(args.text, "utf8");
    const toks = [];
    for (const piece of text.split("\n\n\n")) {
      for (const t of m.tokenize(piece, false)) toks.push(t);
      toks.push(eos);
      if (toks.length >= need) break;
    }
    return toks;
  };
  const tokens = tokenize(model);
  const nWin = Math.min(N, Math.floor((tokens.length - 1) / W) - F);
  if (nWin < 1)
    throw new Error(`the text gives only ${tokens.length} tokens, fewer than ${F > 0 ? `${F} skipped windows and ` : ""}` +
                    `one window of ${W} + 1`);

  const ctxOpts = { contextSize: Math.max(W, args.ctx), batchSize: Math.min(args.batch, W), sequences: 1 };
  // llama.cpp oversubscribes a small shared machine badly; leave one core free by default.
  ctxOpts.threads = threads;
  exactOpts(ctxOpts);
  const ctx = await model.createContext(ctxOpts);
  const seq = ctx.getSequence();
  // --ref: the reference beside the file, scored on the same tokens.
  let refModel = null, refCtx = null, refSeq = null, tRefLoad = 0;
  if (args.ref) {
    const t = Date.now();
    refModel = await llama.loadModel({ modelPath: path.resolve(args.ref) });
    tRefLoad = Date.now() - t;
    const refTokens = tokenize(refModel);
    for (let i = 0; i < (F + nWin) * W + 1; i++)
      if (refTokens[i] !== tokens[i])
        throw new Error(`${args.ref} tokenizes the text differently from ${args.model} (token ${i}: ` +
                        `${refTokens[i]} vs ${tokens[i]})`);
    refCtx = await refModel.createContext(exactOpts({ ...ctxOpts }));
    refSeq = refCtx.getSequence();
  }
  const evalWindow = async (s, win) => {
    await s.clearHistory();
    return s.controlledEvaluate(win.map((t) => [t, { generateNext: { probabilities: true } }]));
  };
  const t1 = Date.now();
  let nll = 0, count = 0;
  const perWindow = [];
  // KL accumulators (llama-perplexity's kl_divergence_result).
  const kls = [], windowKl = [];
  let sumKl = 0, sumKl2 = 0, nllRef = 0, sameTop = 0, sumDp = 0, sumDp2 = 0, maxAbsDp = 0, clamped = 0;
  let pf = null, pr = null;
  const dense = (probs, out) => {
    out.fill(0);
    let best = -1, arg = -1;
    for (const [tok, p] of probs) {
      if (!(tok >= 0 && tok < out.length)) throw new Error(`token id ${tok} outside the vocabulary of ${out.length}`);
      out[tok] = p;
      if (p > best || (p === best && tok < arg)) best = p, arg = tok;
    }
    return arg;
  };
  const minF32 = Math.log(1.401298464324817e-45);
  for (let w = F; w < F + nWin; w++) {
    const win = tokens.slice(w * W, w * W + W);
    const res = await evalWindow(seq, win);
    const ref = refSeq ? await evalWindow(refSeq, win) : null;
    let wn = 0, wk = 0;
    for (let i = 0; i < W; i++) {
      const target = tokens[w * W + i + 1];
      const probs = res[i]?.next?.probabilities;
      const p = probs?.get(target);
      if (p === undefined) throw new Error(`no probability for position ${i} of window ${w}`);
      const l = -Math.log(p);
      nll += l;
      wn += l;
      count++;
      if (!ref) continue;
      const rprobs = ref[i]?.next?.probabilities;
      const rp = rprobs?.get(target);
      if (rp === undefined) throw new Error(`${args.ref}: no probability for position ${i} of window ${w}`);
      const V = Math.max(probs.size, rprobs.size);  // llama.cpp hands out the whole vocabulary
      if (!pf || pf.length !== V) pf = new Float64Array(V), pr = new Float64Array(V);
      const topF = dense(probs, pf), topR = dense(rprobs, pr);
      let kl = 0;
      for (let v = 0; v < V; v++) {
        const a = pr[v];
        if (a > 0) {
          let lq;
          if (pf[v] > 0) lq = Math.log(pf[v]);
          else lq = minF32, clamped++;
          kl += a * (Math.log(a) - lq);
        }
      }
      kls.push(kl);
      sumKl += kl;
      sumKl2 += kl * kl;
      wk += kl;
      nllRef -= Math.log(rp);
      if (topF === topR) sameTop++;
      const dp = p - rp;
      sumDp += dp;
      sumDp2 += dp * dp;
      maxAbsDp = Math.max(maxAbsDp, Math.abs(dp));
    }
    perWindow.push(wn / W);
    if (ref) windowKl.push(wk / W);
  }
  let kl = null;
  if (refSeq) {
    const n = kls.length;
    const meanErr = (s, s2) => {  // llama-perplexity's mean_and_uncertainty
      const m = s / n, v = s2 / n - m * m;
      return [m, n > 1 ? Math.sqrt(Math.max(v, 0) / (n - 1)) : 0];
    };
    const sorted = Float64Array.from(kls).sort();
    const pct = (f) => {  // llama-perplexity's percentile: interpolated between neighbours
      if (f <= 0) return sorted[0];
      if (f >= 1) return sorted[n - 1];
      let q = f * (n - 1);
      const ip = Math.floor(q);
      q -= ip;
      return (1 - q) * sorted[ip] + q * sorted[Math.min(ip + 1, n - 1)];
    };
    const median = n % 2 === 0 ? 0.5 * (sorted[n / 2] + sorted[n / 2 - 1]) : sorted[(n - 1) / 2];
    const [mean, meanUnc] = meanErr(sumKl, sumKl2);
    const same = sameTop / n;
    kl = {
      ref: path.resolve(args.ref),
      positions: n,
      mean, mean_err: meanUnc,
      max: sorted[n - 1], p999: pct(0.999), p99: pct(0.99), p95: pct(0.95), p90: pct(0.9), median,
      p10: pct(0.1), p5: pct(0.05), p1: pct(0.01), min: sorted[0],
      same_top1: same, same_top1_err: n > 1 ? Math.sqrt(same * (1 - same) / (n - 1)) : 0,
      ppl_ref: Math.exp(nllRef / n), nll_ref: nllRef / n,
      ln_ppl_ratio: nll / count - nllRef / n,
      delta_p_mean: sumDp / n, delta_p_rms: Math.sqrt(sumDp2 / n), delta_p_max_abs: maxAbsDp,
      kl_clamped: clamped,
      ref_load_ms: tRefLoad,
      window_kl: windowKl,
    };
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
    first_window: F,
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
    kl,
  }, 0);
  await ctx.dispose();
  await model.dispose();
  if (refCtx) await refCtx.dispose();
  if (refModel) await refModel.dispose();
}

main().catch((e) => out({ ok: false, error: String(e?.message ?? e) }, 1));
