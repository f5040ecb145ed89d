#!/usr/bin/env python3
"""Writes the SentencePiece-style BPE fixture tokenizer (Mixtral / Llama-2's tokenizer.json form) next to this file.

Stdlib only; deterministic. Learns BPE merges on resources/data/kernel-docs-calib.txt the way a SentencePiece BPE
model sees text: spaces become "\u2581" ("▁"), every line starts with one (add_dummy_prefix), words keep their
leading "▁", nothing crosses a line. The vocabulary, as the Hub's converted Llama tokenizers lay it out:
  0 <unk>, 1 <s>, 2 </s> (added, special), 3..258 the byte tokens <0x00>..<0xFF> (byte_fallback),
  then the merged pieces in merge order, then the single characters seen at least twice (most frequent first);
  4096 entries in all (tests/engine/data/families/mixtral.json's vocab_size).
Run from the repository root: python3 tests/engine/data/spm-tokenizer/make_tokenizer.py
"""
import collections, json, os, sys

VOCAB = 4096
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
SP = "\u2581"

text = open(os.path.join(ROOT, "resources", "data", "kernel-docs-calib.txt"), encoding="utf-8").read()
words = collections.Counter()
chars = collections.Counter()
for line in text.split("\n"):
    if not line:
        continue
    s = SP + line.replace(" ", SP)
    w = ""
    for c in s:
        if c == SP and w and not w.endswith(SP):
            words[w] += 1
            w = ""
        w += c
    if w:
        words[w] += 1
for w, n in words.items():
    for c in w:
        chars[c] += n
# single characters: printable ones seen at least twice (tabs and control characters go through the byte tokens)
alphabet = sorted((c for c, n in chars.items() if n >= 2 and c.isprintable() or c == SP), key=lambda c: (-chars[c], c))
alpha_set = set(alphabet)
n_pieces = VOCAB - 3 - 256 - len(alphabet)

# Incremental BPE over the word types: pair counts and, per pair, the words holding it.
seqs = []
freq = []
for w, n in sorted(words.items()):
    seqs.append([c if c in alpha_set else None for c in w])
    freq.append(n)
pairs = collections.Counter()
where = collections.defaultdict(set)
for i, s in enumerate(seqs):
    for a, b in zip(s, s[1:]):
        if a is not None and b is not None:
            pairs[(a, b)] += freq[i]
            where[(a, b)].add(i)
merges, pieces, seen = [], [], set(alphabet)
while len(pieces) < n_pieces and pairs:
    best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
    if pairs[best] < 2:
        break
    a, b = best
    merged = a + b
    for i in sorted(where.pop(best, ())):
        s, n = seqs[i], freq[i]
        for x, y in zip(s, s[1:]):
            if x is not None and y is not None:
                pairs[(x, y)] -= n
                if pairs[(x, y)] <= 0:
                    del pairs[(x, y)]
        out, k = [], 0
        while k < len(s):
            if k + 1 < len(s) and s[k] == a and s[k + 1] == b:
                out.append(merged)
                k += 2
            else:
                out.append(s[k])
                k += 1
        seqs[i] = out
        for x, y in zip(out, out[1:]):
            if x is not None and y is not None:
                pairs[(x, y)] += n
                where[(x, y)].add(i)
    pairs.pop(best, None)
    merges.append([a, b])
    if merged not in seen:
        seen.add(merged)
        pieces.append(merged)
# a merge re-creating an existing string (ab+c, a+bc) adds no entry: the loop counts pieces, not merges
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    vocab["<0x%02X>" % b] = len(vocab)
for p in pieces:
    vocab[p] = len(vocab)
for c in alphabet:
    if c not in vocab:
        vocab[c] = len(vocab)
assert len(vocab) == VOCAB, len(vocab)


def special(i, c):
    return {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
            "special": True}


tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SP},
                                                        {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
    "pre_tokenizer": None,
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    },
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": SP}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "vocab": vocab, "merges": merges},
}
config = {
    "add_bos_token": True,
    "add_eos_token": False,
    "added_tokens_decoder": {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in tok["added_tokens"]},
    "bos_token": "<s>",
    "chat_template": "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                     "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}"
                     "{% endif %}{% endfor %}",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": True,
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "sp_model_kwargs": {},
    "spaces_between_special_tokens": False,
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
    "use_default_system_prompt": False,
}
with open(os.path.join(HERE, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=None, separators=(",", ":"))
    f.write("\n")
with open(os.path.join(HERE, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, ensure_ascii=False, indent=2)
    f.write("\n")
print(f"{len(vocab)} tokens ({len(alphabet)} characters, {len(pieces)} merged pieces), {len(merges)} merges",
      file=sys.stderr)
