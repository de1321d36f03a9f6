"""Weight EMA for `Trainer` runs: timm's `ModelEmaV3` kept by a `TrainerCallback`.

The average is updated after every optimizer step, written into each checkpoint (so a resumed run continues the
same average rather than starting a new one from the resumed weights), and loaded into the model when training
ends: what the recipe then evaluates, saves and pushes is the average.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

__all__ = ["EMA_STATE_FILE", "ModelEmaCallback"]

logger = logging.getLogger(__name__)

EMA_STATE_FILE = "model_ema.pt"


class ModelEmaCallback(TrainerCallback):
    """Keeps `timm.utils.ModelEmaV3` of the trained model (see the module docstring).

    Args:
        decay: the average's decay.
        warmup: ramp the decay up from 0 over the first steps (timm's `use_warmup`).
        resume_from: the checkpoint the run resumes from; its average is loaded when training starts.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, resume_from: Optional[str] = None):
        self.decay = decay
        self.warmup = warmup
        self.resume_from = resume_from
        self.ema = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from timm.utils import ModelEmaV3

        self.ema = ModelEmaV3(model, decay=self.decay, use_warmup=self.warmup)
        saved = Path(self.resume_from) / EMA_STATE_FILE if self.resume_from else None
        if saved is not None and saved.is_file():
            self.ema.module.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
            logger.info(f"Weight EMA resumed from {saved}")
        elif saved is not None:
            logger.warning(f"{self.resume_from} holds no weight EMA ({EMA_STATE_FILE}); the EMA restarts here.")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(model, step=state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            checkpoint.mkdir(parents=True, exist_ok=True)
            torch.save(self.ema.module.state_dict(), checkpoint / EMA_STATE_FILE)

    def restore_finished_run(self, model, checkpoint: str) -> None:
        """A finished run started again trains nothing (`hf_transfer.recipe.train_whole_run`): its result is the
        average its last checkpoint holds."""
        saved = Path(checkpoint) / EMA_STATE_FILE
        if not saved.is_file():
            logger.warning(f"{checkpoint} holds no weight EMA ({EMA_STATE_FILE}); the model keeps the live weights.")
            return
        model.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.load_state_dict(self.ema.module.state_dict())
        logger.info(
            f"Training ended: the model now holds the weight EMA (decay {self.decay}, {state.global_step} steps)"
        )
