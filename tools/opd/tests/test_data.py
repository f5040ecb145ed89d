"""Phase C's reading of rollouts.jsonl + teacher_topk.safetensors: the seed's filters, the striping, clear errors."""
import os
import tempfile
import unittest

from common import write_opd_inputs

from razor_opd.data import DataError, load_samples, shard


class DataTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="razor-opd-data.")
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_filters(self):
        rows = [([1, 2], [3, 4, 5], "stop", True),      # kept
                ([1], [3, 4, 5, 6], "length", True),     # unfinished
                ([1, 2, 3], [4, 5, 6, 7], "stop", True),  # 7 tokens > max_len 6
                ([1], [2], "stop", True),                 # one generated token
                ([1, 2], [3, 4], "stop", False),          # no teacher rows (phase B dropped it)
                ([7], [8, 9], "stop", True),              # kept
                ([4], [5, 6, 7], "text", True)]           # a teacher-forced text piece: kept even with finished-only
        rp, tp = write_opd_inputs(self.d, 32, rows)
        s, drops = load_samples(rp, tp, 32, 6, True, log=lambda m: None)
        self.assertEqual([x.row for x in s], [0, 5, 6])
        self.assertEqual(drops, {"no_teacher": 1, "unfinished": 1, "too_long": 1, "too_short": 1})
        s, _ = load_samples(rp, tp, 32, 6, False, log=lambda m: None)
        self.assertEqual([x.row for x in s], [0, 1, 5, 6])
        idx, lp = s[0].topk()
        self.assertEqual(list(idx.shape), [3, 4])

    def test_shard_sorts_stripes_and_trims(self):
        rows = [([1] * (n % 5 + 1), [2, 3], "stop", True) for n in range(7)]
        rp, tp = write_opd_inputs(self.d, 8, rows)
        s, _ = load_samples(rp, tp, 8, 100, True, log=lambda m: None)
        a, b = shard(s, 0, 2), shard(s, 1, 2)
        self.assertEqual(len(a), 3)
        self.assertEqual(len(b), 3)
        lens = [len(x) for x in sorted(s, key=lambda x: (len(x), x.row))][:6]
        self.assertEqual([len(x) for x in a], lens[0::2])
        self.assertEqual([len(x) for x in b], lens[1::2])

    def test_errors_name_the_input(self):
        rp, tp = write_opd_inputs(self.d, 8, [([1], [2, 3], "stop", True)])
        with open(rp, "a") as f:
            f.write('{"pid": 1, "k": 0, "prompt_ids": [1], "gen_ids": [99], "finish_reason": "stop"}\n')
        with self.assertRaisesRegex(DataError, "rollouts.jsonl:2: 'gen_ids' holds token id 99"):
            load_samples(rp, tp, 8, 100, True, log=lambda m: None)
        with open(rp, "w") as f:
            f.write('{"pid": 0, "k": 0, "prompt_ids": [1], "gen_ids": [2, 3, 4], "finish_reason": "stop"}\n')
        with self.assertRaisesRegex(DataError, "'r0.idx' \\[2, 4\\].*expected \\[3, K\\]"):
            load_samples(rp, tp, 8, 100, True, log=lambda m: None)
        with open(rp, "w") as f:
            f.write('{"pid": 0, "k": 0, "prompt_ids": [1], "gen_ids": [2, 3], "finish_reason": "eos"}\n')
        with self.assertRaisesRegex(DataError, "rollouts.jsonl:1: finish_reason 'eos'"):
            load_samples(rp, tp, 8, 100, True, log=lambda m: None)


if __name__ == "__main__":
    unittest.main()
