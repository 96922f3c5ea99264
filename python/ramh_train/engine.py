"""The training engine shared by the three models: seeding, devices, DDP, mixed precision, checkpoints and resume.

One command serves a CPU, a single GPU and ``torchrun --nproc_per_node=K`` (DistributedDataParallel): the process
group is initialised from torchrun's environment variables when they are present. A run directory holds
``last.pt`` (written atomically every ``checkpoint_every`` steps and at the end) and ``log.jsonl``; starting again
with the same run directory resumes from the saved step with the same data order (the sampler is seeded from the
run seed and the epoch, and the number of batches already consumed is skipped).
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm


@dataclass
class TrainConfig:
    """Hyper-parameters common to every model (each model's command adds its own)."""

    run_dir: str
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 20
    amp: str = "auto"  # auto | off | bf16 | fp16
    workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads on CPU (0 = torch default)
    # NHWC activations: oneDNN's CPU convolutions run about 2x faster on the narrow, high-resolution layers of
    # these models (measured on the joint model); "auto" turns it on for the CPU only.
    channels_last: str = "auto"  # auto | on | off
    # Stop (checkpointed) after this step although the schedule runs to `steps`; a later call resumes. Splits a long
    # run across sessions of limited length without changing the learning-rate schedule. 0 = run to `steps`.
    stop_at: int = 0
    extra: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Initialise DDP from torchrun's environment (RANK/WORLD_SIZE/LOCAL_RANK), or a single process."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Dist()


def pick_device(spec: str, d: Dist) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        spec = f"cuda:{d.local_rank}"
    dev = torch.device(spec)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def autocast_for(device: torch.device, amp: str):
    """Autocast context: bf16 on GPUs that have it (fp16 otherwise), off on the CPU unless asked for."""
    if amp == "off" or (amp == "auto" and device.type == "cpu"):
        return torch.autocast(device_type=device.type, enabled=False), None
    if amp in ("auto", "bf16"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            amp = "fp16"
        else:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16), None
    return torch.autocast(device_type=device.type, dtype=torch.float16), torch.amp.GradScaler(device.type)


def use_channels_last(spec: str, device: torch.device) -> bool:
    """Whether a run keeps its 4-D activations in NHWC (``spec``: auto | on | off; auto = on the CPU)."""
    if spec not in ("auto", "on", "off"):
        raise ValueError(f"channels_last must be auto, on or off, got {spec!r}")
    return spec == "on" or (spec == "auto" and device.type == "cpu")


def _to_device(t, device: torch.device, nhwc: bool):
    if not torch.is_tensor(t):
        return t
    t = t.to(device, non_blocking=True)
    return t.contiguous(memory_format=torch.channels_last) if nhwc and t.ndim == 4 else t


def cosine_lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Checkpointer:
    """``last.pt`` in the run directory: model, optimiser, scaler, step and the RNG states."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "last.pt"

    def save(self, model: nn.Module, opt, scaler, step: int, cfg: TrainConfig, model_config: dict) -> None:
        state = {"model": unwrap(model).state_dict(), "optimizer": opt.state_dict(),
                 "scaler": scaler.state_dict() if scaler else None, "step": step, "config": asdict(cfg),
                 "model_config": model_config, "torch_rng": torch.get_rng_state(),
                 "numpy_rng": np.random.get_state(), "python_rng": random.getstate()}
        _atomic_torch_save(state, self.path)

    def load(self, model: nn.Module, opt, scaler) -> int:
        """Restore from ``last.pt`` when it exists; returns the step to continue from (0 for a new run)."""
        if not self.path.exists():
            return 0
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        unwrap(model).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if scaler and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        return int(state["step"])


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def batches(n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
            start_step: int = 0, weights: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Endless stream of index batches: a fresh seeded permutation per epoch, sharded across DDP ranks.

    With ``weights`` ([n_items], non-negative, not all 0) an epoch is instead ``n_items`` draws with replacement in
    proportion to the weights (oversampling of rare cases). Deterministic in (seed, epoch) either way, so a resumed
    run sees the same batches it would have seen; ``start_step`` batches are skipped.
    """
    if n_items <= 0:
        raise ValueError("the training set is empty")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n_items,) or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be [{n_items}] finite, non-negative and not all zero")
        weights = weights / weights.sum()
    per_rank = max(1, n_items // world)
    per_epoch = max(1, per_rank // batch_size)
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        g = np.random.default_rng([seed, epoch])
        perm = g.permutation(n_items) if weights is None else g.choice(n_items, size=n_items, p=weights)
        mine = perm[rank::world][:per_rank]
        for b in range(skip, per_epoch):
            yield mine[b * batch_size:(b + 1) * batch_size]
        skip = 0
        epoch += 1


@dataclass
class StepResult:
    loss: float
    parts: dict


def train_loop(*, model: nn.Module, model_config: dict, cfg: TrainConfig, n_items: int,
               make_batch: Callable[[np.ndarray, np.random.Generator], tuple],
               loss_fn: Callable[[nn.Module, tuple], tuple[torch.Tensor, dict]],
               evaluate: Callable[[nn.Module], dict] | None = None, eval_every: int = 0,
               desc: str = "train", sample_weights: np.ndarray | None = None) -> dict:
    """Run (or resume) a training run and return a summary with the losses and the last evaluation.

    Args:
        make_batch: (indices, rng) -> batch tuple of tensors (on the CPU; moved to the device here).
        loss_fn: (model, batch on device) -> (loss tensor, {part: float}).
        evaluate: optional callable run on the main rank every ``eval_every`` steps and at the end.
        sample_weights: optional per-item sampling weights (see :func:`batches`).
    """
    d = init_distributed()
    device = pick_device(cfg.device, d)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed + d.rank)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    nhwc = use_channels_last(cfg.channels_last, device)
    if nhwc:
        model.to(memory_format=torch.channels_last)
    if d.world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast, scaler = autocast_for(device, cfg.amp)
    ckpt = Checkpointer(run_dir)
    start = ckpt.load(model, opt, scaler)
    if start >= cfg.steps:
        if d.is_main:
            print(f"{desc}: already trained to step {start} (>= {cfg.steps}); nothing to do")
        return {"step": start, "resumed": True}
    log_path = run_dir / "log.jsonl"
    stream = batches(n_items, cfg.batch_size, cfg.seed, d.rank, d.world, start, weights=sample_weights)
    bar = tqdm(total=cfg.steps, initial=start, desc=desc, disable=not d.is_main, dynamic_ncols=True)
    ema = None
    history = []
    t0 = time.time()
    last_eval: dict = {}
    model.train()
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at > 0 else cfg.steps
    for step in range(start, end):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg)
        idx = next(stream)
        # A generator per step (not one per run) makes a resumed run draw the same augmentations as an unbroken one.
        rng = np.random.default_rng([cfg.seed, d.rank, step])
        batch = tuple(_to_device(t, device, nhwc) for t in make_batch(idx, rng))
        with autocast:
            loss, parts = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise FloatingPointError(f"{desc}: loss became {lv} at step {step}; lower the learning rate")
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        bar.set_postfix(loss=f"{ema:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
        bar.update(1)
        done = step + 1
        if d.is_main and (done % cfg.log_every == 0 or done == cfg.steps):
            rec = {"step": done, "loss": lv, "loss_ema": ema, "lr": opt.param_groups[0]["lr"],
                   "elapsed_s": round(time.time() - t0, 1), **{k: float(v) for k, v in parts.items()}}
            history.append(rec)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if d.is_main and (done % cfg.checkpoint_every == 0 or done == end):
            ckpt.save(model, opt, scaler, done, cfg, model_config)
        if evaluate and d.is_main and eval_every and done % eval_every == 0 and done != cfg.steps:
            model.eval()
            last_eval = evaluate(unwrap(model))
            model.train()
            with open(log_path, "a") as f:
                f.write(json.dumps({"step": done, "eval": last_eval}) + "\n")
    bar.close()
    if end < cfg.steps:
        if d.is_main:
            print(f"{desc}: stopped at step {end} of {cfg.steps} (--stop-at); run the same command to continue")
        if d.world > 1:
            dist.barrier()
        return {"step": end, "resumed": start > 0, "start_step": start, "loss_ema": ema, "history": history,
                "eval": last_eval, "elapsed_s": time.time() - t0, "stopped_early": True}
    if evaluate and d.is_main:
        model.eval()
        last_eval = evaluate(unwrap(model))
        with open(log_path, "a") as f:
            f.write(json.dumps({"step": cfg.steps, "eval": last_eval}) + "\n")
    if d.world > 1:
        dist.barrier()
    return {"step": cfg.steps, "resumed": start > 0, "start_step": start, "loss_ema": ema, "history": history,
            "eval": last_eval, "elapsed_s": time.time() - t0}


def load_trained(run_dir: str | Path, build: Callable[[dict], nn.Module]) -> tuple[nn.Module, dict]:
    """Model from a run directory's ``last.pt`` (built with ``build(model_config)``), in eval mode."""
    state = torch.load(Path(run_dir) / "last.pt", map_location="cpu", weights_only=False)
    model = build(state["model_config"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, state


def chunks(seq: Iterable, n: int) -> Iterator[list]:
    buf = []
    for x in seq:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf
