"""The one training loop every stage uses: pretrain, head restore, MiniJoint, alignment, fine-tune, relearn.

AdamW (fused: one pass over each parameter) over trainable parameters only, linear warmup and decay,
gradient accumulation, bf16 autocast (minimodel.method.precision), an evaluation hook, checkpoint save/resume
(safetensors + JSON, no pickle) and a progress bar. Under torch.distributed (Ray Train's process group)
every rank starts from rank 0's weights, trains on its own batches, the gradients of the trainable
parameters are averaged, and FLOPs and tokens are summed over ranks: a stage's compute is the whole job's.
A step never waits for the device or the other ranks' counts: the loss and the compute totals are
read at report points only (evaluations, checkpoints, the end).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from minimodel.method.compute import Meter
from minimodel.method.precision import autocast


def distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def with_lr(evaluate: Callable[[], dict], optimizer: torch.optim.Optimizer) -> Callable[[], dict]:
    """evaluate, with the learning rate the schedule has set for the next step: a curve shows that the
    schedule runs over this run's own steps (it reaches 0 at the last)."""
    return lambda: {"lr": optimizer.param_groups[0]["lr"], **evaluate()}


def train(
    model: nn.Module,
    loss_fn: Callable[[dict], torch.Tensor],
    batch_at: Callable[[int], dict],
    *,
    steps: int,
    lr: float,
    warmup: float = 0.06,
    accum: int = 1,
    weight_decay: float = 0.01,
    evaluate: Callable[[], dict] | None = None,
    eval_every: int = 0,
    on_eval: Callable[[dict], None] | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    desc: str = "train",
    precision: str = "auto",
) -> dict:
    """Train `model`'s trainable parameters for `steps` optimizer steps of `accum` batches each.

    batch_at(i) returns micro-batch i; loss_fn(batch) its loss. evaluate() runs at step 0, every
    eval_every steps and at the end; each point (with cumulative compute) goes to on_eval and the curve.
    precision (auto | fp32 | bf16) sets the forward's autocast; weights stay fp32.
    """
    rank, world = distributed()
    dev = next(model.parameters()).device
    if world > 1:
        _broadcast(model)
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    params = list(named.values())
    if not params:
        raise ValueError(f"{desc}: nothing to train (every parameter is frozen)")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=dev.type in ("cpu", "cuda"))
    evaluate = with_lr(evaluate, optimizer) if evaluate else None
    schedule = get_linear_schedule_with_warmup(optimizer, int(warmup * steps), steps)
    run = _Progress(Meter(), [], (lambda counts: _sum_over_ranks(counts, dev)) if world > 1 else None, evaluate, on_eval)
    start = 0
    if checkpoint_dir and (Path(checkpoint_dir) / "state.json").exists():
        start, run.loss, run.curve = _resume(Path(checkpoint_dir), named, optimizer, schedule, run.meter)
    model.train()
    run.bar = tqdm(
        range(start, steps), desc=desc, initial=start, total=steps, leave=False, **({"disable": True} if rank else {})
    )  # rank 0 honours TQDM_DISABLE
    if start == 0 and evaluate:
        run.point(0)
    run.meter.begin()
    for step in run.bar:
        batches = [batch_at(step * accum + micro) for micro in range(accum)]
        tokens = sum(b["attention_mask"].sum() for b in batches)
        loss = run.meter.step(
            tuple(batches[0]["input_ids"].shape), tokens, lambda: _backward(loss_fn, batches, params, accum, precision, dev, world)
        )
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        run.loss = loss if run.loss is None else 0.95 * run.loss + 0.05 * loss
        done = step + 1
        if evaluate and eval_every and done % eval_every == 0 and done < steps:
            run.point(done)
            run.meter.begin()
        if checkpoint_dir and checkpoint_every and done % checkpoint_every == 0:
            run.settle()
            if rank == 0:
                _save(Path(checkpoint_dir), done, run.loss, run.curve, named, optimizer, schedule, run.meter)
            run.meter.begin()
    if evaluate and (not run.curve or run.curve[-1]["step"] != steps):
        run.point(steps)
    else:
        run.settle()
    return {"steps": steps, "loss": run.loss, **run.meter.totals(), "curve": run.curve}


@dataclass
class _Progress:
    """What a run reports: its compute, its curve of evaluation points and its smoothed loss (a device
    tensor between report points). Reading them is the only host sync, so it happens here only."""

    meter: Meter
    curve: list[dict]
    job_total: Callable[[list[int]], list[int]] | None  # sums the counts over ranks in a distributed job
    evaluate: Callable[[], dict] | None
    on_eval: Callable[[dict], None] | None
    loss: torch.Tensor | float | None = None
    bar: tqdm | None = None

    def settle(self) -> None:
        """Read the loss and the compute so far (all ranks, same step)."""
        self.meter.settle(self.job_total)
        if self.loss is not None:
            self.loss = float(self.loss)
            self.bar.set_postfix(loss=f"{self.loss:.3f}")

    def point(self, step: int) -> dict:
        """An evaluation point: step, cumulative compute, the evaluation's metrics and the loss."""
        self.settle()
        p = {"step": step, **self.meter.totals(), **(self.evaluate() if self.evaluate else {})}
        if self.loss is not None:
            p["loss"] = round(self.loss, 4)
        self.curve.append(p)
        if self.on_eval:
            self.on_eval(p)
        return p


def _backward(
    loss_fn: Callable[[dict], torch.Tensor],
    batches: list[dict],
    params: list[nn.Parameter],
    accum: int,
    precision: str,
    dev: torch.device,
    world: int,
) -> torch.Tensor:
    """Forward and backward over one step's micro-batches; gradients averaged over ranks. Returns the
    step's loss as a device tensor (not read here: reading it would wait for the device)."""
    total = 0.0
    for batch in batches:
        batch = {k: _to(v, dev) for k, v in batch.items()}
        with autocast(precision, dev):
            loss = loss_fn(batch) / accum
        loss.backward()
        total = total + loss.detach()
    if world > 1:
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world
    return total


def _to(tensor: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """A batch tensor on `dev`; from host memory to a GPU through pinned memory, without waiting."""
    if dev.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(dev, non_blocking=True)
    return tensor.to(dev)


def _broadcast(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers, so no rank starts from its own random init."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor, src=0)


def _sum_over_ranks(counts: list[int], dev: torch.device) -> list[int]:
    """Element-wise sum of every rank's counts (on `dev`: NCCL reduces CUDA tensors only)."""
    t = torch.tensor(counts, dtype=torch.int64, device=dev)
    dist.all_reduce(t)
    return t.tolist()


def _save(folder: Path, step: int, loss: float, curve: list, named: dict, optimizer, schedule, meter: Meter) -> None:
    """Trainable weights, AdamW moments and the RNG state as safetensors, the rest as JSON.

    The RNG state (dropout draws from it) lets a resumed run take the same steps as an uninterrupted one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {f"param.{n}": p.detach().contiguous() for n, p in named.items()}
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    for i, s in state["state"].items():
        tensors.update({f"opt.{i}.{k}": v.contiguous() for k, v in s.items()})
    meta = json.dumps(
        {
            "step": step,
            "loss": loss,
            "curve": curve,
            "param_groups": state["param_groups"],
            "schedule": schedule.state_dict(),
            "meter": {**meter.totals(), "per_shape": [[list(k), v] for k, v in meter.per_shape.items()]},
        }
    )
    # One file renamed into place holds tensors and metadata together: a run killed while saving leaves
    # the previous checkpoint whole, never new weights beside an old step. state.json marks it for others.
    for name, write in (
        ("state.safetensors", lambda path: save_file(tensors, path, metadata={"meta": meta})),
        ("state.json", lambda path: path.write_text(meta)),
    ):
        tmp = folder / f"{name}.tmp"
        write(tmp)
        tmp.replace(folder / name)


def _resume(folder: Path, named: dict, optimizer, schedule, meter: Meter) -> tuple[int, float, list]:
    with safe_open(folder / "state.safetensors", "pt") as f:
        meta = json.loads(f.metadata()["meta"])
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(tensors[f"param.{n}"])
    moments: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, i, k = key.split(".", 2)
            moments.setdefault(int(i), {})[k] = value
    optimizer.load_state_dict({"state": moments, "param_groups": meta["param_groups"]})
    schedule.load_state_dict(meta["schedule"])
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    m = meta["meter"]
    meter.flops, meter.tokens, meter.wall_s = m["flops"], m["tokens"], m["wall_s"]
    meter.per_shape = {tuple(k): v for k, v in m["per_shape"]}
    return meta["step"], meta["loss"], meta["curve"]
