"""safetensors in plain Python: the 8-byte little-endian header length, the JSON header, the data.

Reading maps the file (copy-on-write, so torch.frombuffer gets a writable buffer and nothing is read until a tensor
is used) and validates every entry against the file: known dtype, shape of non-negative integers, offsets inside the
data and exactly the bytes the shape needs. Writing goes to a temporary name beside the target, renamed when
complete. Checkpoints: model.safetensors, or the shards named by model.safetensors.index.json.
"""
import json
import mmap
import os
import struct

import torch

# safetensors dtype name -> (torch dtype, bytes per element). The formats razor's files use.
DTYPES = {
    "BF16": (torch.bfloat16, 2),
    "F16": (torch.float16, 2),
    "F32": (torch.float32, 4),
    "I32": (torch.int32, 4),
}
_NAME_OF = {v[0]: k for k, v in DTYPES.items()}

# A header larger than this is a broken or hostile file (razor's reader uses the same bound: 100 MiB).
MAX_HEADER_BYTES = 100 << 20


class SafetensorsError(Exception):
    pass


class SafetensorsFile:
    """One file, mapped. tensor(name) returns a tensor viewing the map (the file stays mapped while it lives)."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        if size < 8:
            raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors header")
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise SafetensorsError(f"{path}: header length {n} at byte 0 exceeds the file ({size} bytes) "
                                       f"or the {MAX_HEADER_BYTES}-byte limit")
            raw = f.read(n)
            try:
                header = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SafetensorsError(f"{path}: the JSON header (bytes 8..{8 + n}) does not parse: {e}")
            if not isinstance(header, dict):
                raise SafetensorsError(f"{path}: the header is not a JSON object")
            self.metadata = header.pop("__metadata__", None) or {}
            if not isinstance(self.metadata, dict):
                raise SafetensorsError(f"{path}: __metadata__ is not an object")
            self._data0 = 8 + n
            data_len = size - self._data0
            self.entries = {}
            for name, e in header.items():
                where = f"{path}: tensor '{name}'"
                if not isinstance(e, dict):
                    raise SafetensorsError(f"{where}: its entry is not an object")
                dt = e.get("dtype")
                if dt not in DTYPES:
                    raise SafetensorsError(f"{where}: dtype {dt!r} is not one of {', '.join(DTYPES)}")
                shape = e.get("shape")
                if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
                    raise SafetensorsError(f"{where}: shape {shape!r} is not a list of non-negative integers")
                off = e.get("data_offsets")
                if (not isinstance(off, list) or len(off) != 2 or not all(isinstance(o, int) for o in off)
                        or not 0 <= off[0] <= off[1] <= data_len):
                    raise SafetensorsError(f"{where}: data_offsets {off!r} outside the {data_len} data bytes")
                count = 1
                for s in shape:
                    count *= s
                if off[1] - off[0] != count * DTYPES[dt][1]:
                    raise SafetensorsError(f"{where}: {off[1] - off[0]} bytes for shape {shape} of {dt} "
                                           f"(needs {count * DTYPES[dt][1]})")
                self.entries[name] = (dt, shape, off[0], off[1])
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if data_len > 0 else None

    def names(self):
        return list(self.entries)

    def __contains__(self, name):
        return name in self.entries

    def shape(self, name):
        return list(self.entries[name][1])

    def tensor(self, name):
        if name not in self.entries:
            raise SafetensorsError(f"{self.path}: no tensor '{name}'")
        dt, shape, b, e = self.entries[name]
        tdt, _ = DTYPES[dt]
        if e == b:
            return torch.empty(shape, dtype=tdt)
        t = torch.frombuffer(self._map, dtype=tdt, count=(e - b) // DTYPES[dt][1], offset=self._data0 + b)
        return t.reshape(shape)


class Checkpoint:
    """A model directory's tensors over one or several files (name -> file)."""

    def __init__(self, directory):
        self.dir = directory
        index = os.path.join(directory, "model.safetensors.index.json")
        self.files = {}
        self.where = {}
        if os.path.exists(index):
            with open(index, "r", encoding="utf-8") as f:
                try:
                    j = json.load(f)
                except json.JSONDecodeError as e:
                    raise SafetensorsError(f"{index}: does not parse: {e}")
            wm = j.get("weight_map") if isinstance(j, dict) else None
            if not isinstance(wm, dict):
                raise SafetensorsError(f"{index}: no weight_map object")
            for name, fn in wm.items():
                if not isinstance(fn, str) or os.path.basename(fn) != fn:
                    raise SafetensorsError(f"{index}: weight_map['{name}'] = {fn!r} is not a file name in {directory}")
                if fn not in self.files:
                    self.files[fn] = SafetensorsFile(os.path.join(directory, fn))
                if name not in self.files[fn]:
                    raise SafetensorsError(f"{os.path.join(directory, fn)}: does not hold tensor '{name}' "
                                           f"that the index places there")
                self.where[name] = self.files[fn]
        else:
            shards = sorted(p for p in os.listdir(directory) if p.endswith(".safetensors"))
            if not shards:
                raise SafetensorsError(f"{directory}: no model.safetensors, index or *.safetensors file")
            for fn in shards:
                sf = SafetensorsFile(os.path.join(directory, fn))
                self.files[fn] = sf
                for name in sf.names():
                    if name in self.where:
                        raise SafetensorsError(f"{directory}: tensor '{name}' is in both {self.where[name].path} "
                                               f"and {sf.path}")
                    self.where[name] = sf

    def __contains__(self, name):
        return name in self.where

    def names(self):
        return list(self.where)

    def tensor(self, name):
        if name not in self.where:
            raise SafetensorsError(f"{self.dir}: tensor '{name}' not found")
        return self.where[name].tensor(name)


def write_file(path, tensors, metadata=None):
    """Writes {name: tensor} (BF16, F16, F32, I32) to `path` through a temporary name, renamed when complete."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _NAME_OF:
            raise SafetensorsError(f"{path}: tensor '{name}' has dtype {t.dtype}, not one of BF16, F16, F32, I32")
        # bytes of the tensor through a same-width integer view (numpy has no bfloat16)
        iv = {2: torch.int16, 4: torch.int32}[DTYPES[_NAME_OF[t.dtype]][1]]
        b = t.view(iv).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAME_OF[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
