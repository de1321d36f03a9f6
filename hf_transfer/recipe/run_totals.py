"""Training loss and time over the whole run, across resumes.

`Trainer.train()` reports `train_loss` and `train_runtime` of its own call only: a run killed at step 60 of 100
and resumed reports the loss of steps 61-100 and a fraction of the time, and a finished run started again
reports `train_loss` over zero steps. `RunTotalsCallback` keeps the sums in every checkpoint (as an
`ExportableState` in `trainer_state.json`), reads them back when a run resumes, and `whole_run_metrics` gives
the numbers of the whole run.

A finished run started again is a special case: resumed at its last step, `Trainer` runs one step more than
`--max_steps` before it checks the budget. `train_whole_run` loads such a checkpoint's weights instead of
training, and says so.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Optional

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from .saving import checkpoint_writes

__all__ = ["RunTotalsCallback", "checkpoint_is_finished", "train_whole_run"]

logger = logging.getLogger(__name__)


def _saved_totals(state: TrainerState) -> dict:
    """The totals a checkpoint's `trainer_state.json` holds for `RunTotalsCallback` (empty when it has none)."""
    saved = state.stateful_callbacks.get("RunTotalsCallback")
    if isinstance(saved, list):
        saved = saved[-1] if saved else None
    return (saved or {}).get("attributes", {})


class RunTotalsCallback(TrainerCallback, ExportableState):
    """Sums of training loss (per step) and training seconds since step 0, saved with each checkpoint.

    The loss sum is built from the logged losses (each the mean over its logging window); a log is forced at
    every save, so the windows cover every step up to a checkpoint exactly.
    """

    def __init__(self) -> None:
        self.runtime_before = 0.0  # seconds of training before this call of train()
        self.loss_sum_before = 0.0  # sum over steps 1..steps_before of the per-step training loss
        self.steps_before = 0
        self._start: Optional[float] = None
        self._loss_sum = 0.0  # this call, logged windows
        self._last_step = 0

    # What a checkpoint stores: the totals up to the step it is written at.
    def state(self) -> dict:
        return {
            "args": {},
            "attributes": {
                "runtime_before": self.runtime_before + (time.time() - self._start if self._start else 0.0),
                "loss_sum_before": self.loss_sum_before + self._loss_sum,
                "steps_before": self._last_step,
            },
        }

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        attributes = _saved_totals(state)  # restored from the checkpoint, when resuming
        if state.global_step and attributes.get("steps_before") == state.global_step:
            self.runtime_before = float(attributes["runtime_before"])
            self.loss_sum_before = float(attributes["loss_sum_before"])
            self.steps_before = int(attributes["steps_before"])
        elif state.global_step:
            logger.warning(
                "The checkpoint at step %d has no whole-run totals (written by an older version): "
                "train_loss and train_runtime cover this session only.",
                state.global_step,
            )
            self.steps_before = state.global_step
        state.stateful_callbacks.setdefault(type(self).__name__, {})
        self._start = time.time()
        self._loss_sum = 0.0
        self._last_step = state.global_step

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        if control.should_save:
            control.should_log = True  # the loss up to the checkpoint is then logged, hence counted

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Optional[dict] = None,
        **kwargs: Any,
    ):
        if logs and "loss" in logs and state.global_step > self._last_step:
            self._loss_sum += float(logs["loss"]) * (state.global_step - self._last_step)
            self._last_step = state.global_step

    def whole_run_metrics(self, session_metrics: dict, state: TrainerState) -> dict:
        """`train_loss` and `train_runtime` of the whole run, from `train()`'s metrics of this call and the totals
        read back from the checkpoint; `resumed_from_step` when it resumed."""
        session_steps = state.global_step - self.steps_before
        out: dict = {}
        if self.steps_before:
            out["resumed_from_step"] = self.steps_before
        if state.global_step:
            session_loss = float(session_metrics.get("train_loss", 0.0)) * session_steps
            out["train_loss"] = (self.loss_sum_before + session_loss) / state.global_step
        out["train_runtime"] = self.runtime_before + float(session_metrics.get("train_runtime", 0.0))
        return out


def checkpoint_is_finished(checkpoint: str, args: TrainingArguments) -> bool:
    """Whether the run that wrote `checkpoint` had reached this run's step budget (`--max_steps`, or the epochs of
    that run when they were not raised)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    if args.max_steps > 0:
        return state["global_step"] >= args.max_steps
    return state["global_step"] >= state.get("max_steps", float("inf")) and args.num_train_epochs <= state.get(
        "num_train_epochs", 0
    )


def train_whole_run(trainer: Any, checkpoint: Optional[str]) -> dict:
    """`trainer.train(resume_from_checkpoint=checkpoint)` with whole-run `train_loss` / `train_runtime` (and
    `resumed_from_step`); a finished run's checkpoint is loaded instead of trained (see the module docstring)."""
    totals = RunTotalsCallback()
    trainer.add_callback(totals)
    if checkpoint is not None and checkpoint_is_finished(checkpoint, trainer.args):
        trainer._load_from_checkpoint(checkpoint)  # the weights (or adapter) Trainer's own resume would load
        for callback in trainer.callback_handler.callbacks:  # what a callback makes of the weights at the end
            restore = getattr(callback, "restore_finished_run", None)
            if restore is not None:
                restore(trainer.model, checkpoint)
        trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
        attributes = _saved_totals(trainer.state)
        step = trainer.state.global_step
        logger.warning(
            "The run in this --output_dir had already finished (step %d): nothing was trained now; the "
            "results are those of its last checkpoint. Raise --num_train_epochs or --max_steps to train "
            "further.",
            step,
        )
        metrics: dict = {"resumed_from_step": step, "epoch": trainer.state.epoch}
        if attributes.get("steps_before") == step and step:
            metrics["train_loss"] = float(attributes["loss_sum_before"]) / step
            metrics["train_runtime"] = float(attributes["runtime_before"])
        return metrics
    with checkpoint_writes(trainer.args):  # a full disk: one line, no half-written checkpoint left
        result = trainer.train(resume_from_checkpoint=checkpoint)
    return {**result.metrics, **totals.whole_run_metrics(result.metrics, trainer.state)}
