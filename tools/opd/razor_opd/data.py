"""Phase C's inputs (docs/recovery.md, "Files"): rollouts.jsonl and teacher_topk.safetensors, joined by row."""
import json

from .safetensors_io import SafetensorsFile

TEACHER_FORMAT = "razor-opd-teacher-1"
# A rollouts line longer than this is not one of ours (a 1M-token rollout as JSON is about 8 MB).
MAX_LINE_BYTES = 64 << 20


# "stop" / "length": a student rollout that ended at an end token / at the token limit; "text": a teacher-forced
# piece of the calibration text (razor recover --text-pieces), kept whatever --finished-only says.
FINISH_REASONS = ("stop", "length", "text")


class DataError(Exception):
    pass


class Sample:
    __slots__ = ("row", "pid", "k", "prompt_ids", "gen_ids", "finish", "teacher")

    def __init__(self, row, pid, k, prompt_ids, gen_ids, finish, teacher):
        self.row, self.pid, self.k = row, pid, k
        self.prompt_ids, self.gen_ids, self.finish, self.teacher = prompt_ids, gen_ids, finish, teacher

    def __len__(self):
        return len(self.prompt_ids) + len(self.gen_ids)

    def topk(self):
        """(idx [T, K] int32, lp [T, K] float32) of the teacher."""
        return self.teacher.tensor(f"r{self.row}.idx"), self.teacher.tensor(f"r{self.row}.lp")


def _ids(v, where, key, vocab):
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise DataError(f"{where}: '{key}' is not a list of integers")
    for x in v:
        if not 0 <= x < vocab:
            raise DataError(f"{where}: '{key}' holds token id {x}, outside the vocabulary [0, {vocab})")
    return v


def read_rollouts(path, vocab):
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            where = f"{path}:{n}"
            if len(line) > MAX_LINE_BYTES:
                raise DataError(f"{where}: line of {len(line)} bytes (limit {MAX_LINE_BYTES})")
            if not line.strip():
                raise DataError(f"{where}: empty line (one JSON object per line, one per rollout)")
            try:
                j = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise DataError(f"{where}: not JSON: {e}")
            if not isinstance(j, dict):
                raise DataError(f"{where}: not a JSON object")
            for key in ("pid", "k"):
                if not isinstance(j.get(key), int):
                    raise DataError(f"{where}: '{key}' must be an integer")
            fr = j.get("finish_reason")
            if fr not in FINISH_REASONS:
                raise DataError(f"{where}: finish_reason {fr!r} is not one of \"stop\", \"length\", \"text\"")
            rows.append((j["pid"], j["k"], _ids(j.get("prompt_ids"), where, "prompt_ids", vocab),
                         _ids(j.get("gen_ids"), where, "gen_ids", vocab), fr))
    return rows


def open_teacher(path):
    tf = SafetensorsFile(path)
    fmt = tf.metadata.get("format")
    if fmt != TEACHER_FORMAT:
        raise DataError(f"{path}: __metadata__.format is {fmt!r}, expected {TEACHER_FORMAT!r}")
    return tf


def load_samples(rollouts_path, teacher_path, vocab, max_len, finished_only, log=print):
    """Rollouts joined with their teacher rows, filtered as the seed does. Returns (samples, counts of drops)."""
    rows = read_rollouts(rollouts_path, vocab)
    tf = open_teacher(teacher_path)
    kmeta = tf.metadata.get("k")
    drops = {"no_teacher": 0, "unfinished": 0, "too_long": 0, "too_short": 0}
    samples = []
    for i, (pid, k, p, g, fr) in enumerate(rows):
        ni, nl = f"r{i}.idx", f"r{i}.lp"
        if ni not in tf or nl not in tf:
            drops["no_teacher"] += 1
            continue
        si, sl = tf.shape(ni), tf.shape(nl)
        if tf.entries[ni][0] != "I32" or tf.entries[nl][0] != "F32":
            raise DataError(f"{teacher_path}: '{ni}' must be I32 and '{nl}' F32")
        if si != sl or len(si) != 2 or si[0] != len(g) or si[1] < 1:
            raise DataError(f"{teacher_path}: '{ni}' {si} / '{nl}' {sl}: expected [{len(g)}, K] for the "
                            f"{len(g)} generated tokens of {rollouts_path} line {i + 1}")
        if kmeta is not None and str(si[1]) != str(kmeta):
            raise DataError(f"{teacher_path}: '{ni}' has K = {si[1]}, the metadata says k = {kmeta}")
        if finished_only and fr == "length":
            drops["unfinished"] += 1
            continue
        if len(p) + len(g) > max_len:
            drops["too_long"] += 1
            continue
        if len(g) <= 1 or len(p) < 1:
            drops["too_short"] += 1
            continue
        samples.append(Sample(i, pid, k, p, g, fr, tf))
    log(f"data: {len(rows)} rollouts, {len(samples)} kept; dropped: {drops['no_teacher']} without teacher rows, "
        f"{drops['unfinished']} unfinished (--finished-only), {drops['too_long']} longer than --max-len, "
        f"{drops['too_short']} with <= 1 generated token or no prompt")
    idx_check = None
    for s in samples:  # teacher ids inside the vocabulary (checked once, before training)
        idx, _ = s.topk()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab):
            idx_check = s.row
            break
    if idx_check is not None:
        raise DataError(f"{teacher_path}: 'r{idx_check}.idx' holds a token id outside the vocabulary [0, {vocab})")
    return samples, drops


def shard(samples, rank, world):
    """Sorted by length, striped across ranks, trimmed to an equal count per rank (the seed's scheme)."""
    ordered = sorted(samples, key=lambda s: (len(s), s.row))
    per = len(ordered) // world
    ordered = ordered[:per * world]
    return ordered[rank::world]
