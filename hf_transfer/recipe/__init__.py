"""What every recipe is made of, so `recipes/*.py` stay readable top to bottom (like transformers' `run_*.py`).

`start` (steps 1-3: arguments, logging, the output folder and resume, in one call; and the last step: results,
card and push), `arguments` (config files
and flags into dataclasses), `checks` (bad input stopped at the start), `logs`, `launch` (`run_recipe`: one
line and exit 2 for a user error, the CPU processes `accelerate launch` asked for), `run_guard` (the output
folder's lock and run identity), `run_totals` (train loss and runtime over every resume), `transfer_model`
(the classification recipes' model loading path), `saving` (a trained model and its processor, staged, in
the format users load it back with).
"""

from .arguments import config_to_argv, parse_recipe_args
from .checks import check_modality_match, refuse_under_sharding
from .launch import run_recipe
from .logs import setup_logging, setup_quiet_logging
from .run_totals import train_whole_run
from .saving import (
    classifier_pooling,
    publish_classifier,
    publish_merged_lora,
    publish_trained_model,
    save_classifier,
    saved_format_info,
)
from .start import RecipeStart, finish_recipe, start_recipe
from .transfer_model import TransferModel, load_transfer_model

__all__ = [
    "RecipeStart",
    "start_recipe",
    "finish_recipe",
    "config_to_argv",
    "parse_recipe_args",
    "check_modality_match",
    "refuse_under_sharding",
    "run_recipe",
    "setup_logging",
    "setup_quiet_logging",
    "train_whole_run",
    "TransferModel",
    "load_transfer_model",
    "classifier_pooling",
    "publish_classifier",
    "publish_merged_lora",
    "publish_trained_model",
    "save_classifier",
    "saved_format_info",
]
