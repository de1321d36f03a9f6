"""`start_recipe` and `finish_recipe`: the first and the last steps every recipe takes, each in one call.

What each recipe would otherwise write out in the same words: parse `[CONFIG] [--flags]` (or run the default job),
take the Hub token out of `TrainingArguments` before any `Trainer` sees it, log on the main process, lock the
output folder and find the checkpoint of the same run to resume from, and seed everything. At the end: the results
file, the run record and model card, and the Hub push, on the main process, while the other processes wait.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from accelerate import PartialState
from transformers import HfArgumentParser, TrainingArguments, set_seed

from ..cpu_processes import cpu_threads_to_use
from ..hub import HubArguments, publish_run, take_hub_token
from ..outputs import write_errors_as_one_line, write_json_atomic
from ..run_record import RunRecord
from .arguments import given_argument_names, parse_recipe_args
from .logs import setup_logging
from .run_guard import claim_output_dir, run_identity, where_the_work_is

__all__ = ["RecipeStart", "start_recipe", "finish_recipe"]

logger = logging.getLogger(__name__)


@dataclass
class RecipeStart:
    """What a recipe starts from.

    Args:
        arguments: the parsed argument dataclasses, in the order the recipe listed their classes.
        push_to_hub: whether `--push_to_hub` was asked (the push happens once, at the end, with the card).
        hub_token: the Hub token, kept out of the saved arguments.
        checkpoint: the checkpoint to resume from, or None for a fresh run.
        given: the argument names set by a flag or a config key (`given_argument_names`).
    """

    arguments: tuple
    push_to_hub: bool
    hub_token: Optional[str]
    checkpoint: Optional[str]
    given: frozenset[str] = frozenset()

    def get(self, cls: type) -> Any:
        """The parsed arguments of class `cls`."""
        return next(a for a in self.arguments if isinstance(a, cls))


def start_recipe(
    argument_classes: Sequence[type],
    default_config: Optional[str] = None,
    *,
    defaults: Optional[dict[str, Any]] = None,
    check: Optional[Callable[..., None]] = None,
    resumes: Optional[Callable[..., bool]] = None,
    argv: Optional[Sequence[str]] = None,
) -> RecipeStart:
    """Parse, log, lock and resume: every recipe's first three steps.

    Args:
        argument_classes: the recipe's dataclasses; `TrainingArguments` among them.
        default_config: the config file run when no argument is given (the recipe's built-in job).
        defaults: this recipe's own defaults of shared flags (maml runs LoRA without dropout), as
            `{"lora_dropout": 0.0}`; `--help` shows them.
        check: called with the parsed arguments before anything is written; raises a `ConfigError` for a
            combination no single dataclass can check (domain_adapt's strategies).
        resumes: called with the parsed arguments; False when the run has no `Trainer` checkpoint to resume
            (finetune's linear probe). Default: it resumes.
        argv: the command line; default `sys.argv[1:]`.
    """
    # 1. Arguments: CLI flags, a YAML/JSON file (+ overriding flags), or nothing for the default job.
    parser = HfArgumentParser(tuple(argument_classes))
    if defaults:
        parser.set_defaults(**defaults)
    arguments = tuple(parse_recipe_args(parser, argv, default_config=default_config))
    training_args = next(a for a in arguments if isinstance(a, TrainingArguments))
    if check is not None:
        check(*arguments)
    push_to_hub, hub_token = take_hub_token(training_args)

    # 2. The machine and logging: a CPU process that accelerate pinned to one thread nobody asked for gets its share
    #    of the cores (hf_transfer.cpu_processes); only the main process talks.
    threads = cpu_threads_to_use()
    if threads is not None:
        torch.set_num_threads(threads)
    setup_logging(training_args)
    if threads is not None:
        logger.info(
            f"accelerate launch gave this process 1 CPU thread (OMP_NUM_THREADS=1, not set by you): using {threads}, "
            "the cores per process here; pass --num_cpu_threads_per_process or export OMP_NUM_THREADS to choose."
        )
    for args in arguments:
        if not isinstance(args, (TrainingArguments, HubArguments)):
            logger.info(f"{type(args).__name__}: {args}")

    # 3. The output folder: locked for this run; a complete checkpoint of the same run in it is resumed from
    #    unless one is named explicitly (a checkpoint of another run is an error).
    described = [a for a in arguments if not isinstance(a, HubArguments)]
    checkpoint = claim_output_dir(
        training_args, run_identity(*described), resumes=resumes is None or resumes(*arguments)
    )
    if checkpoint is not None:
        logger.info(f"Resuming training from {checkpoint}")
    set_seed(training_args.seed)
    return RecipeStart(arguments, push_to_hub, hub_token, checkpoint, given_argument_names(argv, default_config))


def finish_recipe(run: RecipeStart, metrics: dict[str, Any], record: RunRecord, *, push_merged: bool = False) -> None:
    """The last step of every recipe: `all_results.json` (with `peak_gpu_memory_mib` on a GPU), the run record with
    its scores and the model card, and the Hub push when `--push_to_hub` asked for it (main process); every process
    returns once that is done."""
    training_args = run.get(TrainingArguments)
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # what the run needed of this process's GPU
        metrics = {**metrics, "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20}
    if training_args.should_save:
        write_json_atomic(Path(training_args.output_dir) / "all_results.json", metrics)
    logger.info(f"Results: {metrics}")
    record = record.with_results(metrics)  # the scores per split, read once out of the flat keys
    # The run record and model card (then the push, which writes nothing there): a refused write is one line.
    with write_errors_as_one_line(training_args.output_dir, "the run record and model card", note=where_the_work_is):
        publish_run(
            training_args,
            run.get(HubArguments),
            push=run.push_to_hub,
            token=run.hub_token,
            record=record,
            push_merged=push_merged,
        )
    PartialState().wait_for_everyone()
