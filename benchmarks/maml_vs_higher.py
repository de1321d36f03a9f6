#!/usr/bin/env python
"""Benchmark: one MAML meta-training step, `hf_transfer.meta.MAML` vs. `higher` (the usual library for it).

Needs `higher` (benchmark only, not a dependency of the toolkit): `pip install higher==0.2.1`.

Both variants run exact second-order MAML on the same model, the same tasks (seeded synthetic N-way
K-shot episodes: the timing does not depend on pixel or token values), the same inner learning rate
and steps (1 and 5), task by task with `backward()` after each task (higher's own MAML example does the
same), so only the inner-loop machinery differs:
- `maml`: `MAML.forward` (functional inner loop on a dict of fast weights, `torch.func.functional_call`,
  fused `_foreach` SGD update, batch norm with batch statistics and untouched running statistics);
- `higher`: `higher.innerloop_ctx(model, SGD, copy_initial_weights=False)` and `diffopt.step(loss)`.

Models: `conv4`, the 4-block Conv-BatchNorm-ReLU-MaxPool network of the MAML paper (32 channels, 28x28
grey images, 5-way 1-shot 15-query) and `tiny-bert`, a 2-layer BERT (hidden 32, 32 tokens, 5-way
1-shot 5-query; word embeddings frozen, as is usual for text MAML). Attention runs its math kernel in
both variants (the fused kernels have no double backward).

Each (model, steps, variant) runs in a fresh subprocess, interleaved (maml, higher, maml, higher, ...
`--repeats` times) so both see the same machine load; torch uses `--threads` threads (1 by default:
on a shared 2-core machine more threads make small ops several times slower and much noisier).
Per run: median wall time of `--timed_steps` meta-steps after `--warmup_steps`, and peak memory:
process RSS high-water mark (`ru_maxrss`) minus the RSS right before the first meta-step, i.e. what the
unrolled graphs, gradients and optimizer added. The meta-gradients of the first meta-step of both
variants are compared (max abs difference), so the speed is not bought with a different result.

    python benchmarks/maml_vs_higher.py                       # both models, steps 1 and 5, 3 repeats
    python benchmarks/maml_vs_higher.py --models conv4 --repeats 1
    python benchmarks/maml_vs_higher.py --variant maml --model conv4 --inner_steps 5   # one run, in-process

The last line is `speedup_vs_higher: X`: higher's median step time over ours at 5 inner steps, for the
model where that ratio is smallest (the conservative number).
"""

import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import HfArgumentParser

from _common import current_rss_mib, machine_info, peak_rss_mib
from _maml_tasks import MODELS, make_model_and_tasks
from hf_transfer.errors import ConfigError
from hf_transfer.meta import MAML, MAMLConfig
from hf_transfer.outputs import write_json_atomic
from hf_transfer.recipe import run_recipe

logger = logging.getLogger(__name__)

NAME = "maml_vs_higher"
VARIANTS = ("maml", "higher")


@dataclass
class BenchmarkArguments:
    """What is compared.

    Args:
        variant (`Literal["both", "maml", "higher"]`): `both` runs every (model, steps, variant) in fresh
            subprocesses, interleaved, and writes the comparison; `maml` / `higher` runs one in this process.
        models (`list[str]`): models compared by `both` (`conv4`, `tiny-bert`).
        model (`str`): the model of a single-variant run.
        steps (`list[int]`): inner-step counts compared by `both`.
        inner_steps (`int`): inner steps of a single-variant run.
        repeats (`int`): interleaved (maml, higher) pairs per (model, steps).
        meta_batch_size (`int`): tasks per meta-step.
        inner_lr (`float`): inner SGD learning rate.
        warmup_steps, timed_steps (`int`): meta-steps left out of / used for the median time.
        threads (`int`): torch intra-op threads.
        device (`str`): `cpu` or `cuda` (benchmarks/gpu_check.sh); on CUDA the step is timed after a synchronize and
            the peak is `torch.cuda.max_memory_allocated`.
        output_file (`str`, *optional*): where the JSON goes.
    """

    variant: Literal["both", "maml", "higher"] = field(
        default="both", metadata={"help": "both: compare in interleaved subprocesses. maml / higher: one run here."}
    )
    models: list[str] = field(default_factory=lambda: list(MODELS), metadata={"help": f"Models: {MODELS}."})
    model: str = field(default="conv4", metadata={"help": "Model of a single-variant run."})
    steps: list[int] = field(default_factory=lambda: [1, 5], metadata={"help": "Inner-step counts compared."})
    inner_steps: int = field(default=5, metadata={"help": "Inner steps of a single-variant run."})
    repeats: int = field(default=3, metadata={"help": "Interleaved (maml, higher) pairs per model and step count."})
    meta_batch_size: int = field(default=4, metadata={"help": "Tasks per meta-step."})
    inner_lr: float = field(default=0.4, metadata={"help": "Inner SGD learning rate."})
    warmup_steps: int = field(default=2, metadata={"help": "Meta-steps left out of the median time."})
    timed_steps: int = field(default=6, metadata={"help": "Meta-steps whose median time is reported."})
    threads: int = field(default=1, metadata={"help": "torch intra-op threads (1: stable on a shared machine)."})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda."})
    output_file: Optional[str] = field(
        default=None, metadata={"help": f"JSON results. Default: benchmarks/results/{NAME}.json."}
    )

    def __post_init__(self) -> None:
        for name in [self.model, *self.models]:
            if name not in MODELS:
                raise ConfigError(f"Unknown model {name!r}; choose from {', '.join(MODELS)}.")
        for flag in ("repeats", "meta_batch_size", "timed_steps", "threads", "inner_steps"):
            if getattr(self, flag) < 1:
                raise ConfigError(f"--{flag} must be at least 1; got {getattr(self, flag)}.")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"--device {self.device!r} must be cpu or cuda.")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is visible here.")
        if self.output_file is None:
            suffix = "" if self.device == "cpu" else f"_{self.device}"
            self.output_file = os.path.join("benchmarks", "results", f"{NAME}{suffix}.json")


# --------------------------------------------------------------------------------------------------
# One meta-step per variant (the models and tasks are `_maml_tasks.py`, shared with `maml_vmap_check.py`)


def _logits(output):
    return output if torch.is_tensor(output) else output.logits


def make_meta_step(variant: str, model: nn.Module, tasks, steps: int, inner_lr: float):
    """A function doing one meta-step (gradients of the mean query loss over the tasks) with that variant."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    params = [p for p in model.parameters() if p.requires_grad]
    outer = torch.optim.Adam(params, lr=1e-3)
    if variant == "maml":
        maml = MAML(model, MAMLConfig(inner_steps=steps, inner_lr=inner_lr)).train()

        def step() -> None:
            outer.zero_grad(set_to_none=True)
            for support, support_labels, query, query_labels in tasks:
                (maml(support, support_labels, query, query_labels).loss / len(tasks)).backward()

    else:
        import higher

        inner = torch.optim.SGD(params, lr=inner_lr)

        def step() -> None:
            outer.zero_grad(set_to_none=True)
            model.train()
            with sdpa_kernel(SDPBackend.MATH):  # the same attention kernel MAML uses for second order
                for support, support_labels, query, query_labels in tasks:
                    with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
                        for _ in range(steps):
                            diffopt.step(F.cross_entropy(_logits(fmodel(**support)), support_labels))
                        (F.cross_entropy(_logits(fmodel(**query)), query_labels) / len(tasks)).backward()

    return step, params, outer


def _on(value, device: torch.device):
    """A task (tensors, dicts and tuples of them) on `device`."""
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _on(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on(v, device) for v in value)
    return value


def run_variant(args: BenchmarkArguments, gradient_file: Optional[str] = None) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, tasks = make_model_and_tasks(args.model, args.meta_batch_size)
    model, tasks = model.to(device), _on(tasks, device)
    step, params, optimizer = make_meta_step(args.variant, model, tasks, args.inner_steps, args.inner_lr)
    gc.collect()
    before = current_rss_mib()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    durations = []
    for i in range(args.warmup_steps + args.timed_steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        durations.append(time.perf_counter() - start)
        if i == 0 and gradient_file:  # the first meta-gradient, from the initial weights, for the cross-check
            torch.save(torch.cat([p.grad.reshape(-1) for p in params]), gradient_file)
        optimizer.step()
    timed = durations[args.warmup_steps :]
    return {
        "model": args.model,
        "variant": args.variant,
        "inner_steps": args.inner_steps,
        "median_step_s": statistics.median(timed),
        "step_s": timed,
        "rss_before_mib": before,
        "peak_mib": peak_rss_mib(),
        "train_peak_mib": peak_rss_mib() - before,
        "parameters": sum(p.numel() for p in params),
        "load_average": os.getloadavg(),
        "device": args.device,
        **({"cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20} if cuda else {}),
    }


def run_in_subprocess(model: str, steps: int, variant: str, tmp: str, index: int) -> dict:
    output = os.path.join(tmp, f"{index}.json")
    gradient = os.path.join(tmp, f"{model}-{steps}-{variant}.pt")
    command = [
        sys.executable,
        os.path.abspath(__file__),
        *sys.argv[1:],
        "--variant",
        variant,
        "--model",
        model,
        "--inner_steps",
        str(steps),
        "--output_file",
        output,
    ]
    subprocess.run(command, check=True, env={**os.environ, "MAML_BENCH_GRADIENT_FILE": gradient})
    with open(output) as f:
        return json.load(f)


def main():
    # 1. Arguments
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=logging.WARNING
    )
    logger.setLevel(logging.INFO)

    # 2. One variant: run it here (what each subprocess does).
    if args.variant != "both":
        result = run_variant(args, os.environ.get("MAML_BENCH_GRADIENT_FILE"))
        write_json_atomic(args.output_file, result)
        logger.info(
            f"{args.model} {args.variant} {args.inner_steps} steps: {result['median_step_s']:.4f} s/step, "
            f"+{result['train_peak_mib']:.0f} MiB"
        )
        return

    # 3. Both: fresh subprocesses, maml and higher interleaved.
    load_start = os.getloadavg()
    runs, gradient_diff = [], {}
    with tempfile.TemporaryDirectory(prefix="maml-bench-") as tmp:
        for repeat in range(args.repeats):
            for model in args.models:
                for steps in args.steps:
                    for variant in VARIANTS:
                        runs.append({"repeat": repeat, **run_in_subprocess(model, steps, variant, tmp, len(runs))})
        for model in args.models:
            for steps in args.steps:
                ours = torch.load(os.path.join(tmp, f"{model}-{steps}-maml.pt"))
                theirs = torch.load(os.path.join(tmp, f"{model}-{steps}-higher.pt"))
                gradient_diff[f"{model}/{steps}"] = float((ours - theirs).abs().max() / theirs.abs().max())

    # 4. Summary: medians per (model, steps, variant) and ratios higher / maml.
    summary = {}
    for model in args.models:
        for steps in args.steps:
            cell = {}
            for variant in VARIANTS:
                mine = [r for r in runs if (r["model"], r["inner_steps"], r["variant"]) == (model, steps, variant)]
                cell[variant] = {k: statistics.median(r[k] for r in mine) for k in ("median_step_s", "train_peak_mib")}
            cell["speedup"] = cell["higher"]["median_step_s"] / cell["maml"]["median_step_s"]
            cell["memory_ratio"] = cell["maml"]["train_peak_mib"] / max(cell["higher"]["train_peak_mib"], 1e-9)
            cell["max_relative_gradient_difference"] = gradient_diff[f"{model}/{steps}"]
            summary[f"{model}/{steps}"] = cell
    results = {
        "benchmark": NAME,
        "arguments": asdict(args),
        "machine": machine_info("higher", torch_threads=args.threads),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "runs": runs,
        "summary": summary,
    }
    write_json_atomic(args.output_file, results)

    print(
        f"{NAME}: second-order MAML meta-step, {args.meta_batch_size} tasks, {args.repeats} interleaved repeats "
        f"in fresh subprocesses, {args.threads} torch thread(s), {os.cpu_count()} CPUs"
    )
    print(
        f"  {'model':10} {'steps':>5} {'maml s/step':>12} {'higher s/step':>14} {'speedup':>8} "
        f"{'maml MiB':>9} {'higher MiB':>11} {'grad diff':>10}"
    )
    for key, cell in summary.items():
        model, steps = key.split("/")
        ours, theirs = cell["maml"], cell["higher"]
        print(
            f"  {model:10} {steps:>5} {ours['median_step_s']:>12.4f} {theirs['median_step_s']:>14.4f} "
            f"{cell['speedup']:>8.2f} {ours['train_peak_mib']:>9.1f} {theirs['train_peak_mib']:>11.1f} "
            f"{cell['max_relative_gradient_difference']:>10.1e}"
        )
    print(f"  results: {args.output_file}")
    at_five = [cell["speedup"] for key, cell in summary.items() if key.endswith("/5")] or [
        cell["speedup"] for cell in summary.values()
    ]
    print(f"speedup_vs_higher: {min(at_five):.2f}")


if __name__ == "__main__":
    run_recipe(main)
