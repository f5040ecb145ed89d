#!/usr/bin/env python3
"""Independent reference for test_engine's hand-checked tokenizer ids (stdlib only).

Plain-ASCII strings only: for them the Qwen2 pre-tokenizer pattern reduces to ASCII character classes, so Python's
`re` can split them; BPE then merges by rank straight from tokenizer.json. Prints C++ initialisers for
tests/engine/test_tokenizer.cpp. Run: python3 tests/engine/make_tokenizer_expectations.py resources/models/tiny-qwen3-moe/tokenizer.json
"""
import json, re, sys

tok = json.load(open(sys.argv[1], encoding="utf-8"))
vocab = tok["model"]["vocab"]
ranks = {}
for i, m in enumerate(tok["model"]["merges"]):
    a, b = m if isinstance(m, list) else m.split(" ", 1)
    ranks.setdefault((a, b), i)

def b2u():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, map(chr, cs)))
B2U = b2u()
# Qwen2 pattern with \p{L} -> [A-Za-z], \p{N} -> [0-9] (valid for ASCII input only).
PAT = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

def bpe(piece):
    sym = [B2U[b] for b in piece.encode("utf-8")]
    while len(sym) > 1:
        best = min(range(len(sym) - 1), key=lambda i: (ranks.get((sym[i], sym[i + 1]), 1 << 60), i))
        if (sym[best], sym[best + 1]) not in ranks:
            break
        sym[best:best + 2] = [sym[best] + sym[best + 1]]
    return [vocab[s] for s in sym]

STRINGS = ["Hello world", "The kernel's memory management subsystem.\n\n", "int x = 42;  // comment\n\tfoo(bar);",
           "CONFIG_DEBUG_FS=y\n  - item one\n  - item two\n", "I'LL see: you'd they've"]
for s in STRINGS:
    assert s.isascii()
    ids = [i for p in PAT.findall(s) for i in bpe(p)]
    print("  {%s, {%s}}," % (json.dumps(s), ", ".join(map(str, ids))))
