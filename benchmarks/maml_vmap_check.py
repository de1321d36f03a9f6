#!/usr/bin/env python
"""Check: would batching the tasks of a meta-step with `torch.func.vmap` make MAML faster, and is it exact?

`hf_transfer.meta.MAML` adapts task by task (a loop of functional inner loops). The only algorithmic way to
beat that loop is to batch the tasks: `vmap` over tasks of a function that runs the inner loop with
`torch.func.grad` (second order) and returns the query loss, as in functorch's MAML example. This script
runs both on the same model and tasks as `maml_vs_higher.py` (both take them from `_maml_tasks.py`) and
prints the relative difference of the meta-gradients and the median step times (one torch thread, interleaved):

    python benchmarks/maml_vmap_check.py --model conv4 --inner_steps 5
    python benchmarks/maml_vmap_check.py --model conv4 --inner_steps 5 --without_batch_norm true
    python benchmarks/maml_vmap_check.py --model tiny-bert --inner_steps 5

Results are in benchmarks/RESULTS.md (MAML section): on conv4 (BatchNorm with batch statistics) the vmapped
meta-gradient differs from the exact per-task one (without BatchNorm it is exact but no faster), and the transformers BERT cannot be vmapped at all
(data-dependent control flow in its attention-mask code), so the toolkit keeps the per-task loop.
"""

import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.func import grad, vmap
from transformers import HfArgumentParser

from _maml_tasks import MODELS, make_model_and_tasks
from hf_transfer.meta import MAML, MAMLConfig


@dataclass
class CheckArguments:
    model: str = field(default="conv4", metadata={"help": f"One of {MODELS}."})
    inner_steps: int = field(default=5, metadata={"help": "Inner SGD steps."})
    inner_lr: float = field(default=0.4, metadata={"help": "Inner learning rate."})
    meta_batch_size: int = field(default=4, metadata={"help": "Tasks per meta-step."})
    timed_steps: int = field(default=5, metadata={"help": "Meta-steps per timing round (median)."})
    without_batch_norm: bool = field(default=False, metadata={"help": "conv4 with its BatchNorm layers removed."})


def main() -> None:
    (args,) = HfArgumentParser((CheckArguments,)).parse_args_into_dataclasses()
    torch.set_num_threads(1)
    model, tasks = make_model_and_tasks(args.model, args.meta_batch_size)
    if args.without_batch_norm and isinstance(model, torch.nn.Sequential):
        for i, layer in enumerate(model):
            if isinstance(layer, torch.nn.BatchNorm2d):
                model[i] = torch.nn.Identity()
    maml = MAML(model, MAMLConfig(inner_steps=args.inner_steps, inner_lr=args.inner_lr)).train()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def stacked(i):
        first = tasks[0][i]
        if isinstance(first, dict):
            return {k: torch.stack([t[i][k] for t in tasks]) for k in first}
        return torch.stack([t[i] for t in tasks])

    support, support_labels, query, query_labels = (stacked(i) for i in range(4))

    def per_task_loop() -> dict[str, torch.Tensor]:
        for p in params.values():
            p.grad = None
        for s, sl, q, ql in tasks:
            (maml(s, sl, q, ql).loss / len(tasks)).backward()
        return {n: p.grad.clone() for n, p in params.items()}

    def query_loss(theta, s, sl, q, ql):
        fast = theta
        for _ in range(args.inner_steps):
            g = grad(lambda p: F.cross_entropy(maml.functional_forward(p, s), sl))(fast)
            fast = {n: fast[n] - args.inner_lr * g[n] for n in fast}
        return F.cross_entropy(maml.functional_forward(fast, q), ql)

    def vmapped() -> dict[str, torch.Tensor]:
        for p in params.values():
            p.grad = None
        with maml.episode_mode():
            losses = vmap(query_loss, in_dims=(None, 0, 0, 0, 0), randomness="error")(
                dict(params), support, support_labels, query, query_labels
            )
        losses.mean().backward()
        return {n: p.grad.clone() for n, p in params.items()}

    exact = per_task_loop()
    try:
        batched = vmapped()
    except RuntimeError as err:
        print(f"vmap_fails: {str(err).splitlines()[0][:200]}")
        return
    scale = max(float(v.abs().max()) for v in exact.values())
    print(f"relative_grad_diff: {max(float((exact[n] - batched[n]).abs().max()) for n in exact) / scale:.2e}")
    times = {"per_task_loop": [], "vmap": []}
    for _ in range(2):  # interleaved rounds
        for name, fn in (("per_task_loop", per_task_loop), ("vmap", vmapped)):
            for _ in range(args.timed_steps):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    loop_s, vmap_s = statistics.median(times["per_task_loop"]), statistics.median(times["vmap"])
    print(f"per_task_loop_s: {loop_s:.3f}\nvmap_s: {vmap_s:.3f}\nvmap_speedup: {loop_s / vmap_s:.2f}")


if __name__ == "__main__":
    main()
