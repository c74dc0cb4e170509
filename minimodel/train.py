"""The one training loop every stage uses: pretrain, head restore, MiniJoint, alignment, fine-tune, relearn.

AdamW over trainable parameters only, linear warmup and decay, gradient accumulation, bf16 autocast on
CUDA, an evaluation hook, checkpoint save/resume (safetensors + JSON, no pickle) and a progress bar.
Under torch.distributed (Ray Train's process group) every rank trains on its own batches and the
gradients of the trainable parameters are averaged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from minimodel.compute import Meter


def distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
) -> dict:
    """Train `model`'s trainable parameters for `steps` optimizer steps of `accum` batches each.

    batch_at(i) returns micro-batch i; loss_fn(batch) its loss. evaluate() runs at step 0, every
    eval_every steps and at the end; each point (with cumulative compute) goes to on_eval and the curve.
    """
    rank, world = distributed()
    dev = next(model.parameters()).device
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    params = list(named.values())
    if not params:
        raise ValueError(f"{desc}: nothing to train (every parameter is frozen)")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(warmup * steps), steps)
    meter, curve, start, loss_avg = Meter(), [], 0, None
    if checkpoint_dir and (Path(checkpoint_dir) / "state.json").exists():
        start, loss_avg, curve = _resume(Path(checkpoint_dir), named, optimizer, schedule, meter)

    def point(step: int) -> dict:
        p = {"step": step, **meter.totals(), **(evaluate() if evaluate else {})}
        if loss_avg is not None:
            p["loss"] = round(loss_avg, 4)
        curve.append(p)
        if on_eval:
            on_eval(p)
        return p

    def one_step(batches: list[dict]) -> float:
        total = 0.0
        for batch in batches:
            batch = {k: v.to(dev) for k, v in batch.items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = loss_fn(batch) / accum
            loss.backward()
            total += loss.item()
        if world > 1:
            for p in params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world
        return total

    model.train()
    if start == 0 and evaluate:
        point(0)
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps, leave=False,
               **({"disable": True} if rank else {}))  # rank 0 honours TQDM_DISABLE
    for step in bar:
        batches = [batch_at(step * accum + micro) for micro in range(accum)]
        tokens = sum(int(b["attention_mask"].sum()) for b in batches) * world
        loss = meter.step(tuple(batches[0]["input_ids"].shape), tokens, lambda: one_step(batches))
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss_avg = loss if loss_avg is None else 0.95 * loss_avg + 0.05 * loss
        bar.set_postfix(loss=f"{loss_avg:.3f}")
        done = step + 1
        if evaluate and eval_every and done % eval_every == 0 and done < steps:
            point(done)
        if checkpoint_dir and checkpoint_every and done % checkpoint_every == 0 and rank == 0:
            _save(Path(checkpoint_dir), done, loss_avg, curve, named, optimizer, schedule, meter)
    if evaluate and (not curve or curve[-1]["step"] != steps):
        point(steps)
    return {"steps": steps, "loss": loss_avg, **meter.totals(), "curve": curve}


def _save(folder: Path, step: int, loss: float, curve: list, named: dict, optimizer, schedule, meter: Meter) -> None:
    """Trainable weights and AdamW moments as safetensors, the rest as JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {f"param.{n}": p.detach().contiguous() for n, p in named.items()}
    for i, s in state["state"].items():
        tensors.update({f"opt.{i}.{k}": v.contiguous() for k, v in s.items()})
    save_file(tensors, folder / "state.safetensors")
    meta = {"step": step, "loss": loss, "curve": curve, "param_groups": state["param_groups"],
            "schedule": schedule.state_dict(),
            "meter": {**meter.totals(), "per_shape": [[list(k), v] for k, v in meter.per_shape.items()]}}
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(meta))
    tmp.replace(folder / "state.json")


def _resume(folder: Path, named: dict, optimizer, schedule, meter: Meter) -> tuple[int, float, list]:
    meta = json.loads((folder / "state.json").read_text())
    tensors = load_file(folder / "state.safetensors")
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
    m = meta["meter"]
    meter.flops, meter.tokens, meter.wall_s = m["flops"], m["tokens"], m["wall_s"]
    meter.per_shape = {tuple(k): v for k, v in m["per_shape"]}
    return meta["step"], meta["loss"], meta["curve"]
