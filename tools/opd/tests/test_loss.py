"""The seed's loss against cases computed by hand (scalar math, no torch in the expected values)."""
import math
import unittest

import common  # noqa: F401  (sets sys.path)
import torch

from razor_opd.loss import P_REST_FLOOR, Q_REST_FLOOR, batch_loss, kl_rows, sample_loss

# float32 arithmetic in the loss vs float64 by hand
TOL = 1e-5


class LossTest(unittest.TestCase):
    # student softmax q = [0.25, 0.5, 0.25]; teacher top-2 ids [1, 0] with log-probs log 0.6, log 0.3, so
    # p_t = softmax = [2/3, 1/3] and the teacher's rest is the floor; q on the ids = [0.5, 0.25], q_rest = 0.25.
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    idx = torch.tensor([[1, 0]], dtype=torch.int32)
    lp = torch.tensor([[math.log(0.6), math.log(0.3)]])

    def test_reverse_kl_with_rest_mass(self):
        want = (0.5 * math.log(0.5 / (2 / 3)) + 0.25 * math.log(0.25 / (1 / 3))
                + 0.25 * math.log(0.25 / P_REST_FLOOR))
        got = kl_rows(self.logits, self.idx, self.lp, reverse=True)
        self.assertAlmostEqual(float(got[0]), want, delta=TOL * abs(want))

    def test_forward_kl_with_rest_mass(self):
        want = ((2 / 3) * math.log((2 / 3) / 0.5) + (1 / 3) * math.log((1 / 3) / 0.25)
                + P_REST_FLOOR * math.log(P_REST_FLOOR / 0.25))
        got = kl_rows(self.logits, self.idx, self.lp, reverse=False)
        self.assertAlmostEqual(float(got[0]), want, delta=TOL * abs(want))

    def test_teacher_rest_true_uses_the_teachers_own_mass(self):
        # p_t = [0.6, 0.3] as given, p_rest = 0.1; q on the ids [0.5, 0.25], q_rest 0.25
        want = 0.5 * math.log(0.5 / 0.6) + 0.25 * math.log(0.25 / 0.3) + 0.25 * math.log(0.25 / 0.1)
        got = kl_rows(self.logits, self.idx, self.lp, reverse=True, teacher_rest="true")
        self.assertAlmostEqual(float(got[0]), want, delta=TOL * abs(want))
        want = 0.6 * math.log(0.6 / 0.5) + 0.3 * math.log(0.3 / 0.25) + 0.1 * math.log(0.1 / 0.25)
        got = kl_rows(self.logits, self.idx, self.lp, reverse=False, teacher_rest="true")
        self.assertAlmostEqual(float(got[0]), want, delta=TOL * abs(want))

    def test_temperature_divides_the_student_logits(self):
        # tau 2: logits [0, ln 2 / 2, 0] -> q = [1, sqrt 2, 1] / (2 + sqrt 2)
        z = 2 + math.sqrt(2)
        q1, q0 = math.sqrt(2) / z, 1 / z
        qr = 1 - q1 - q0
        want = q1 * math.log(q1 / (2 / 3)) + q0 * math.log(q0 / (1 / 3)) + qr * math.log(qr / P_REST_FLOOR)
        got = kl_rows(self.logits, self.idx, self.lp, reverse=True, tau=2.0)
        self.assertAlmostEqual(float(got[0]), want, delta=TOL * abs(want))

    def test_student_rest_is_floored(self):
        # the teacher's ids cover the whole vocabulary: q_rest = 1 - 1 -> the floor
        idx = torch.tensor([[1, 0, 2]], dtype=torch.int32)
        lp = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
        want = Q_REST_FLOOR * math.log(Q_REST_FLOOR / P_REST_FLOOR)  # q equals p_t: only the rest term remains
        got = kl_rows(self.logits, idx, lp, reverse=True)
        self.assertAlmostEqual(float(got[0]), want, delta=1e-6)

    def test_identical_distributions_give_zero_forward_kl(self):
        idx = torch.tensor([[1, 0, 2]], dtype=torch.int32)
        lp = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
        got = kl_rows(self.logits, idx, lp, reverse=False)
        self.assertAlmostEqual(float(got[0]), P_REST_FLOOR * math.log(P_REST_FLOOR / Q_REST_FLOOR), delta=1e-9)


class _Stub:
    """hidden_states(ids) = one-hot rows of the ids, logits = hidden @ W: a model whose every position is known."""

    def __init__(self, W):
        self.W = W
        self.embed = torch.zeros(1)

    def hidden_states(self, ids):
        return torch.nn.functional.one_hot(ids, self.W.shape[0]).float()

    def logits(self, h):
        return h @ self.W


class SampleLossTest(unittest.TestCase):
    def test_aligned_length_normalised_and_chunked(self):
        torch.manual_seed(0)
        V = 6
        m = _Stub(torch.randn(V, V))
        prompt, gen = [3, 1], [4, 0, 5, 2, 2]
        idx = torch.tensor([[(t + j) % V for j in range(3)] for t in range(len(gen))], dtype=torch.int32)
        lp = torch.log_softmax(torch.randn(len(gen), 4), -1)[:, :3]
        # teacher row t scores the student's distribution after prompt + gen[:t]: the logits row of token
        # (prompt + gen)[len(prompt) - 1 + t]
        seq = prompt + gen
        rows = [kl_rows(m.W[seq[len(prompt) - 1 + t]][None], idx[t:t + 1], lp[t:t + 1])[0] for t in range(len(gen))]
        want = float(sum(rows)) / len(gen)
        for chunk in (128, 2, 1):
            got = float(sample_loss(m, prompt, gen, idx, lp, vchunk=chunk))
            self.assertAlmostEqual(got, want, delta=TOL * abs(want))

    def test_batch_equals_the_samples_one_by_one(self):
        torch.manual_seed(1)
        V = 6
        m = _Stub(torch.randn(V, V))

        class S:
            def __init__(self, prompt, gen):
                self.prompt_ids, self.gen_ids = prompt, gen
                self.idx = torch.randint(0, V, (len(gen), 3), dtype=torch.int32)
                self.lp = torch.log_softmax(torch.randn(len(gen), 4), -1)[:, :3]

            def topk(self):
                return self.idx, self.lp

        group = [S([3, 1], [4, 0, 5]), S([2, 2], [1, 1, 0]), S([5, 0], [3, 4, 2])]
        got = batch_loss(m, group, vchunk=2)
        for g, s in zip(got, group):
            want = float(sample_loss(m, s.prompt_ids, s.gen_ids, s.idx, s.lp))
            self.assertAlmostEqual(float(g), want, delta=TOL * abs(want))
        with self.assertRaisesRegex(ValueError, "lengths differ"):
            batch_loss(m, [group[0], S([1], [2, 3, 4])])


if __name__ == "__main__":
    unittest.main()
