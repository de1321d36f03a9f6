"""The outer loop's metrics in experiment trackers, through accelerate's trackers API: `Accelerator(log_with=...)`,
`init_trackers` with the run's settings, `log` per logging step, and each tracker's `finish` at the end.

`--report_to` takes the names `Trainer` recipes take, and the logs land where transformers' TensorBoard callback
puts them (`tracking_dir`).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from accelerate import Accelerator
from transformers import TrainingArguments

from ..errors import ConfigError
from .arguments import MAMLConfig

__all__ = ["tracking_dir", "accelerate_trackers", "tracked_settings", "finish_trackers"]


def tracking_dir(output_dir: str) -> str:
    """Where trackers write, as transformers' TensorBoard callback decides it: `$TENSORBOARD_LOGGING_DIR`, else
    `<output_dir>/runs` (a run named by `--run_name`, default `maml`, in a folder of its own)."""
    return os.path.expanduser(os.environ.get("TENSORBOARD_LOGGING_DIR") or os.path.join(output_dir, "runs"))


def accelerate_trackers(report_to: Optional[Sequence[str] | str]) -> list[str]:
    """`--report_to` as accelerate tracker names (tensorboard, trackio, wandb, mlflow, ...): the outer loop logs
    through `Accelerator.log`, so the names `Trainer` recipes take work here too; one it does not know stops."""
    from accelerate.utils import LoggerType

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n for n in names if n != "none"]
    known = {t.value for t in LoggerType}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"--report_to {' '.join(unknown)}: maml logs through accelerate's trackers ({', '.join(sorted(known))}); "
            "choose among those."
        )
    return names


def tracked_settings(config: MAMLConfig, meta_batch_size: int, args: TrainingArguments) -> dict:
    """The outer and inner loop's settings, as the trackers' run configuration."""
    return {
        "inner_steps": config.inner_steps,
        "eval_inner_steps": config.num_eval_inner_steps,
        "inner_lr": config.inner_lr,
        "first_order": config.first_order,
        "learn_inner_lr": config.learn_inner_lr,
        "meta_batch_size": meta_batch_size,
        "learning_rate": args.learning_rate,
        "max_steps": args.max_steps,
    }


def finish_trackers(accelerator: Accelerator) -> None:
    """End the trackers' runs. Not `Accelerator.end_training`: that also destroys the process group, which the
    meta-test after training still gathers its episodes through."""
    for tracker in accelerator.trackers:
        tracker.finish()
