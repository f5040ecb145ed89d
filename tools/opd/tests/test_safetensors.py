import os
import struct
import tempfile
import unittest

from common import MODELS  # noqa: F401  (sets sys.path)
import torch

from razor_opd.safetensors_io import Checkpoint, SafetensorsError, SafetensorsFile, write_file


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="razor-opd-st.")
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_round_trip_every_dtype(self):
        t = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7,
             "b": torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16),
             "c": torch.tensor([[0.1, 65504.0]], dtype=torch.float16),
             "d": torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32),
             "e": torch.zeros(0, 4)}
        p = os.path.join(self.d, "x.safetensors")
        write_file(p, t, {"format": "test", "n": 5})
        f = SafetensorsFile(p)
        self.assertEqual(f.metadata, {"format": "test", "n": "5"})
        for k, v in t.items():
            r = f.tensor(k)
            self.assertEqual(r.dtype, v.dtype)
            self.assertEqual(list(r.shape), list(v.shape))
            self.assertTrue(torch.equal(r, v), k)
        with open(p, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
        self.assertEqual(n % 8, 0)  # the header padded to 8 bytes, as razor's writer
        self.assertFalse([x for x in os.listdir(self.d) if "partial" in x])

    def test_reads_the_fixture_checkpoint(self):
        ck = Checkpoint(os.path.join(MODELS, "tiny-qwen3-moe"))
        w = ck.tensor("model.norm.weight")
        self.assertEqual(w.dtype, torch.bfloat16)
        self.assertEqual(list(w.shape), [256])

    def test_sharded_checkpoint(self):
        write_file(os.path.join(self.d, "s1.safetensors"), {"x": torch.ones(2)})
        write_file(os.path.join(self.d, "s2.safetensors"), {"y": torch.zeros(3)})
        with open(os.path.join(self.d, "model.safetensors.index.json"), "w") as f:
            f.write('{"weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}}')
        ck = Checkpoint(self.d)
        self.assertEqual(sorted(ck.names()), ["x", "y"])
        self.assertTrue(torch.equal(ck.tensor("y"), torch.zeros(3)))
        with open(os.path.join(self.d, "model.safetensors.index.json"), "w") as f:
            f.write('{"weight_map": {"x": "s2.safetensors"}}')
        with self.assertRaisesRegex(SafetensorsError, "does not hold tensor 'x'"):
            Checkpoint(self.d)

    def test_bad_files_are_named(self):
        p = os.path.join(self.d, "bad.safetensors")
        write_file(p, {"a": torch.ones(4)})
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(data[:-4])  # truncated data
        with self.assertRaisesRegex(SafetensorsError, "bad.safetensors: tensor 'a'"):
            SafetensorsFile(p)
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", 1 << 40) + b"{}")
        with self.assertRaisesRegex(SafetensorsError, "header length"):
            SafetensorsFile(p)
        hdr = b'{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}'
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)) + hdr + b"\0" * 4)
        with self.assertRaisesRegex(SafetensorsError, "dtype 'Q9'"):
            SafetensorsFile(p)


if __name__ == "__main__":
    unittest.main()
