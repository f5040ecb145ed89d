#!/usr/bin/env python3
"""The reference of tests/gguf/test_mmproj.cpp: what llama.cpp's own converter writes for the tiny vision tower.

Runs `convert_hf_to_gguf.py MODEL --mmproj --outtype T` (the oracle's llama.cpp source, read only) for each type on
the checkpoint `razor synth --vision` makes of the test's tiny config, and records every key (GGUF value types and
value) and every tensor (ggml type, shape, SHA-256 of its bytes) as JSON. The test writes the same checkpoint and
compares its own export with this record, byte for byte.

    razor synth --config tiny.json --out /tmp/tiny --vision --stddev 0.5
    python3 tools/mmproj/converter_reference.py --llama-src /work/llama-src --model /tmp/tiny \
        --out tests/gguf/data/mmproj-converter-reference.json

Needs torch and numpy. The converter imports transformers (only to read config.json, which it then reads itself)
and tqdm (a progress bar): when they are missing, --shim puts minimal stand-ins for both, and the float8 / uint
dtype names torch < 2.1 lacks, on the converter's path. Nothing of the converter is copied here.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

SHIM_TRANSFORMERS = """class AutoConfig:
    @staticmethod
    def from_pretrained(*a, **k):
        raise RuntimeError("transformers stand-in: the converter falls back to reading config.json")
class AutoTokenizer(AutoConfig):
    pass
"""
SHIM_TQDM = """class tqdm:
    def __init__(self, *a, **k): pass
    def update(self, *a, **k): pass
    def close(self): pass
    def set_description(self, *a, **k): pass
"""
SHIM_SITE = """import torch
for _n in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "uint16", "uint32", "uint64"):
    if not hasattr(torch, _n):
        setattr(torch, _n, type(_n, (), {})())
"""


def read_gguf(path, gguf_py):
    sys.path.insert(0, gguf_py)
    from gguf import GGUFReader  # noqa: E402
    r = GGUFReader(path)
    keys = []
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        types = [int(t) for t in f.types]
        if types[0] == 8:
            val = bytes(f.parts[f.data[0]]).decode()
        elif types[0] == 9:
            val = [bytes(f.parts[i]).decode() if types[1] == 8 else f.parts[i].tolist()[0] for i in f.data]
        else:
            val = f.parts[f.data[0]].tolist()[0]
        keys.append({"key": f.name, "types": types, "value": val})
    tensors = [{"name": t.name, "type": t.tensor_type.name.lower(), "ne": [int(x) for x in t.shape],
                "sha256": hashlib.sha256(t.data.tobytes()).hexdigest()} for t in r.tensors]
    return {"keys": keys, "tensors": tensors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--types", default="f16,f32,bf16,q8_0")
    ap.add_argument("--shim", action="store_true")
    a = ap.parse_args()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory() as tmp:
        if a.shim:
            for rel, text in (("transformers/__init__.py", SHIM_TRANSFORMERS), ("tqdm/__init__.py", SHIM_TQDM),
                              ("sitecustomize.py", SHIM_SITE)):
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)) or tmp, exist_ok=True)
                with open(os.path.join(tmp, rel), "w") as f:
                    f.write(text)
            env["PYTHONPATH"] = tmp + os.pathsep + env.get("PYTHONPATH", "")
        commit = subprocess.run(["git", "-C", a.llama_src, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        out = {"generator": "tools/mmproj/converter_reference.py",
               "converter": "llama.cpp convert_hf_to_gguf.py --mmproj (commit %s)" % (commit or "?"),
               "files": {}}
        for t in a.types.split(","):
            path = os.path.join(tmp, "ref-%s.gguf" % t)
            r = subprocess.run([sys.executable, os.path.join(a.llama_src, "convert_hf_to_gguf.py"), a.model, "--mmproj",
                                "--outtype", t, "--outfile", path], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("convert_hf_to_gguf.py --outtype %s failed:\n%s" % (t, r.stderr[-4000:]))
            out["files"][t] = read_gguf(path, os.path.join(a.llama_src, "gguf-py"))
    # One line per key and per tensor.
    lines = ["{", ' "generator": %s,' % json.dumps(out["generator"]), ' "converter": %s,' % json.dumps(out["converter"]),
             ' "files": {']
    for i, (t, fl) in enumerate(out["files"].items()):
        lines.append('  %s: {' % json.dumps(t))
        lines.append('   "keys": [')
        lines += ["    " + json.dumps(k) + ("," if j + 1 < len(fl["keys"]) else "") for j, k in enumerate(fl["keys"])]
        lines.append('   ],')
        lines.append('   "tensors": [')
        lines += ["    " + json.dumps(x) + ("," if j + 1 < len(fl["tensors"]) else "") for j, x in enumerate(fl["tensors"])]
        lines.append('   ]')
        lines.append('  }' + ("," if i + 1 < len(out["files"]) else ""))
    lines += [" }", "}"]
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
