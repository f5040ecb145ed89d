"""Phase C of OPD recovery: per-expert LoRA on the fake-quantized student against the teacher's top-k (docs/recovery.md).

One process, or several through torch.distributed (gloo): launched by torchrun (RANK / WORLD_SIZE in the
environment) or spawning itself with --nproc N. The LoRA is replicated on every rank (same seed, same init); after
each step's micro-batches every LoRA gradient (zeros where an expert received no token) is all-reduced and averaged,
so every replica takes the same optimizer step (the seed's scheme, without FSDP: see docs/recovery.md).
"""
import argparse
import hashlib
import json
import math
import os
import socket
import sys
import time

import torch
import torch.distributed as dist

from .data import DataError, load_samples, shard
from .loss import batch_loss
from .model import ModelError, Student
from .safetensors_io import SafetensorsError, SafetensorsFile, write_file

ADAPTER_FORMAT = "razor-opd-lora-1"
EMA_DECAY = 0.9  # kl_ema = EMA_DECAY * kl_ema + (1 - EMA_DECAY) * kl


class TrainError(Exception):
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="train.py", description="OPD phase C: per-expert LoRA of the quantized student "
                                "against the teacher's top-k log-probabilities (docs/recovery.md)")
    p.add_argument("--student", required=True, help="the fake-quantized student checkpoint directory")
    p.add_argument("--rollouts", required=True, help="rollouts.jsonl (phase A)")
    p.add_argument("--teacher-topk", required=True, help="teacher_topk.safetensors (phase B)")
    p.add_argument("--out", required=True, help="adapter.safetensors to write")
    p.add_argument("--log", default="", help="train_log.jsonl to write (rank 0)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank")
    p.add_argument("--scale", type=float, default=2.0, help="LoRA scale s")
    p.add_argument("--tau", type=float, default=1.0, help="student temperature")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--accum", type=int, default=8, help="micro-samples per optimizer step (per process)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-len", type=int, default=8192, help="drop rollouts longer than this (prompt + generation)")
    p.add_argument("--reverse", type=int, choices=(0, 1), default=1, help="1: reverse KL, 0: forward KL")
    p.add_argument("--finished-only", type=int, choices=(0, 1), default=1,
                   help="train only on rollouts that ended with an end token (the seed's complete-trajectory variant)")
    p.add_argument("--teacher-rest", choices=("seed", "true"), default="true",
                   help="seed: p_t = softmax(teacher top-k), rest = the floor (the seed's formula); true: the teacher's "
                        "own top-k probabilities and rest mass 1 - sum p_t (docs/recovery.md)")
    p.add_argument("--nproc", type=int, default=1, help="processes to spawn (gloo) when not launched by torchrun")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=1, help="a train_log.jsonl line every N steps")
    p.add_argument("--ckpt-every", type=int, default=0, help="write the adapter every N steps (0: at the end only)")
    p.add_argument("--qat-base", default="",
                   help="quantization-aware training: the unquantized teacher checkpoint; the routed experts' forward is "
                        "fakequant(W_teacher + s B A) on the grid <student>/razor_quant_summary.json records "
                        "(straight-through gradient), the weights phase D's merge writes (docs/recovery.md)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--smoke", action="store_true", help="one step, then print SMOKE OK")
    a = p.parse_args(argv)
    for k in ("rank", "epochs", "accum", "max_len", "nproc"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    if not (a.tau > 0 and a.lr > 0 and math.isfinite(a.scale)):
        p.error("--tau and --lr must be positive, --scale finite")
    return a


def _check_replaceable_log(path):
    """A log razor did not write is never replaced."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb") as f:
        first = f.readline(1 << 16)
    try:
        j = json.loads(first.decode("utf-8"))
        if isinstance(j, dict) and ("step" in j or "done" in j):
            return
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    raise TrainError(f"{path}: exists and is not a training log this trainer wrote; refusing to replace it")


def _check_replaceable_adapter(path):
    if not os.path.exists(path):
        return
    try:
        ok = SafetensorsFile(path).metadata.get("format") == ADAPTER_FORMAT
    except (OSError, SafetensorsError):
        ok = False
    if not ok:
        raise TrainError(f"{path}: exists and is not an adapter ({ADAPTER_FORMAT}); refusing to replace it")


def _save_adapter(model, args):
    write_file(args.out, model.adapter_tensors(),
               {"format": ADAPTER_FORMAT, "rank": str(args.rank), "scale": repr(float(args.scale)),
                "model": os.path.abspath(args.student)})


def _checksum(params):
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run(rank, world, args, init_method=None):
    t_start = time.time()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # checked on every rank before the group forms, so that a refusal stops them all alike
    _check_replaceable_adapter(args.out)
    if args.log:
        _check_replaceable_log(args.log)
    if world > 1:
        dist.init_process_group("gloo", init_method=init_method or "env://", rank=rank, world_size=world)

    def say(msg):
        if rank == 0:
            print(msg, flush=True)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is usable by this PyTorch")
    torch.manual_seed(args.seed)
    model = Student(args.student, rank=args.rank, scale=args.scale, seed=args.seed, device=device,
                    qat_base=args.qat_base or None)
    params = list(model.lora.parameters())
    n_lora = sum(p.numel() for p in params)
    say(f"student {args.student}: {model.cfg.model_type}, {model.cfg.n_layers} layers, {model.cfg.n_experts} experts; "
        f"LoRA rank {args.rank} scale {args.scale}: {n_lora} parameters; {world} process(es)"
        + (f"; QAT on {args.qat_base}'s experts (group {model.qat['group']}, clip search {model.qat['clip']})"
           if model.qat else ""))
    samples, _ = load_samples(args.rollouts, args.teacher_topk, model.cfg.vocab, args.max_len,
                              bool(args.finished_only), log=say)
    if len(samples) < world:
        raise TrainError(f"{len(samples)} usable rollouts for {world} processes: nothing to train on "
                         f"(see the drop counts above)")
    mine = shard(samples, rank, world)
    total_micro = args.epochs * len(mine)
    steps = max(1, math.ceil(total_micro / args.accum))
    if args.smoke:
        steps = 1
    say(f"training: {len(mine)} rollouts per process, {steps} steps of {args.accum} micro-samples, "
        f"{'reverse' if args.reverse else 'forward'} KL, tau {args.tau}, lr {args.lr}, teacher rest {args.teacher_rest}")
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    log = open(args.log, "w", encoding="utf-8") if (args.log and rank == 0) else None
    ema = None
    tokens_total = 0
    finished = False
    try:
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            kl_sum, n_micro, tok = 0.0, 0, 0
            js = [step * args.accum + a for a in range(args.accum)]
            batch = [mine[j % len(mine)] for j in js if j < total_micro or args.smoke]
            # micro-samples of equal prompt and generation lengths share one batched forward (the same losses)
            while batch:
                n = 1
                while (n < len(batch) and len(batch[n].prompt_ids) == len(batch[0].prompt_ids)
                       and len(batch[n].gen_ids) == len(batch[0].gen_ids)):
                    n += 1
                group, batch = batch[:n], batch[n:]
                losses = batch_loss(model, group, bool(args.reverse), args.tau, teacher_rest=args.teacher_rest)
                (sum(losses) / args.accum).backward()
                for loss, s in zip(losses, group):
                    kl_sum += float(loss.detach())
                    n_micro += 1
                    tok += len(s.gen_ids)
            # every LoRA gradient, zeros where no expert received a token, averaged over the ranks
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = torch.cat([g.reshape(-1) for g in grads]).float().cpu()
            stats = torch.tensor([kl_sum, float(n_micro), float(tok)], dtype=torch.float64)
            if world > 1:
                dist.all_reduce(flat)
                flat /= world
                dist.all_reduce(stats)
            off = 0
            for p in params:
                n = p.numel()
                p.grad = flat[off:off + n].view_as(p).to(p.device, p.dtype)
                off += n
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            kl = float(stats[0] / max(1.0, float(stats[1])))
            if step == 0:
                say(f"step0 kl={kl:.4f} grad(LoRA,avg)={gnorm:.3e}")
                if not (gnorm > 0 and math.isfinite(gnorm)):
                    raise TrainError(f"step 0: the LoRA gradient norm is {gnorm}: nothing would train "
                                     f"(the loss does not reach the adapter)")
            if not math.isfinite(kl):
                raise TrainError(f"step {step}: the loss is {kl}")
            opt.step()
            model.refresh_qat()  # QAT: the next forward uses fakequant(W_base + s B A) of the updated adapter
            tokens_total += int(stats[2])
            ema = kl if ema is None else EMA_DECAY * ema + (1 - EMA_DECAY) * kl
            if log and ((step + 1) % args.log_every == 0 or step + 1 == steps):
                log.write(json.dumps({"step": step + 1, "loss": kl, "kl": kl, "kl_ema": ema, "lr": args.lr,
                                      "tokens": tokens_total, "seconds": round(time.time() - t_start, 3)}) + "\n")
                log.flush()
            if rank == 0 and step % 5 == 0:
                print(f"step {step + 1}/{steps} kl={kl:.4f} ema={ema:.4f} |g|={gnorm:.3e}", flush=True)
            if args.ckpt_every > 0 and (step + 1) % args.ckpt_every == 0 and step + 1 < steps and rank == 0:
                _save_adapter(model, args)
        # the replicas must agree: rank 0's LoRA against every rank's
        diff = torch.zeros((), dtype=torch.float64)
        if world > 1:
            for p in params:
                ref = p.detach().float().cpu().clone()
                dist.broadcast(ref, 0)
                diff = torch.maximum(diff, (p.detach().float().cpu() - ref).abs().max().double())
            dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        print(f"rank {rank} adapter checksum {_checksum(params)}", flush=True)
        if float(diff) != 0.0:
            raise TrainError(f"the LoRA replicas differ across ranks (max |difference| {float(diff):.3e})")
        if rank == 0:
            _save_adapter(model, args)
            if log:
                log.write(json.dumps({"done": True, "steps": steps, "adapter": os.path.basename(args.out)}) + "\n")
                log.flush()
            print(f"wrote {args.out} after {steps} steps ({time.time() - t_start:.1f} s)", flush=True)
            if args.smoke:
                print("SMOKE OK", flush=True)
        finished = True
    finally:
        if log:
            log.close()
        if world > 1:
            if finished:
                dist.barrier()
            dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(rank, args, port):
    try:
        run(rank, args.nproc, args, init_method=f"tcp://127.0.0.1:{port}")
    except (TrainError, ModelError, DataError, SafetensorsError, OSError, ValueError) as e:
        print(f"train.py: error (rank {rank}): {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)


def main(argv=None):
    args = parse_args(argv)
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:  # torchrun
            run(int(os.environ.get("RANK", "0")), world, args)
        elif args.nproc > 1:
            import torch.multiprocessing as mp
            try:
                mp.spawn(_spawned, args=(args, _free_port()), nprocs=args.nproc, join=True)
            except mp.ProcessExitedException as e:
                print(f"train.py: a worker process failed ({e})", file=sys.stderr)
                return 2
            except mp.ProcessRaisedException as e:
                print(f"train.py: a worker process failed:\n{e}", file=sys.stderr)
                return 2
        else:
            run(0, 1, args)
    except (TrainError, ModelError, DataError, SafetensorsError, OSError, ValueError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    return 0
