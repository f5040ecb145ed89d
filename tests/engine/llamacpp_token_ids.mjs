// Reference token ids from the real llama.cpp (node-llama-cpp, see shared/docs/llamacpp-oracle.md) for
// tests/engine/data/valid_tokens_llamacpp.txt. Usage (from the repository root):
//   { cat resources/data/kernel-docs-eval.txt; printf '\n\n\n'; cat resources/data/kernel-docs-calib.txt; } > /tmp/valid.txt
//   node tests/engine/llamacpp_token_ids.mjs MODEL.gguf /tmp/valid.txt OUT.txt
// (the two bundled halves joined back are the valid split, resources/data/README.md).
// MODEL.gguf: any GGUF of the fixture (same tokenizer), e.g. the F32 conversion of tiny-qwen3-moe by core/gguf; only
// its vocabulary is loaded (vocabOnly). tests/engine/data/spm-tokenizer/valid_tokens_llamacpp.txt: the same from a
// GGUF of `razor synth --config tests/engine/data/families/mixtral.json` with that folder's tokenizer files.
// Protocol of resources/models/README.md: split on "\n\n\n", tokenize each piece without special tokens, append
// token 0 after each. Output: one line per piece, "<n_tokens> <fnv1a-64 of the ids as u32 LE, hex>", then a
// last line "total <n>".
import { createRequire } from "module";
import fs from "fs";
import path from "path";
const require = createRequire(path.resolve(".oracle/package.json"));
const { getLlama } = await import(require.resolve("node-llama-cpp"));
const [gguf, textPath, out] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never" });
const model = await llama.loadModel({ modelPath: gguf, vocabOnly: true });
const text = fs.readFileSync(textPath, "utf8");
const lines = [];
let total = 0;
function fnv(ids) {
  let h = 0xcbf29ce484222325n;
  for (const id of ids)
    for (let b = 0; b < 4; ++b) {
      h ^= BigInt((id >>> (8 * b)) & 0xff);
      h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
    }
  return h.toString(16).padStart(16, "0");
}
for (const piece of text.split("\n\n\n")) {
  const ids = Array.from(model.tokenize(piece, false));
  ids.push(0);
  total += ids.length;
  lines.push(`${ids.length} ${fnv(ids)}`);
}
lines.push(`total ${total}`);
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log(`total ${total}, ${lines.length - 1} pieces -> ${out}`);
await model.dispose();
await llama.dispose();
