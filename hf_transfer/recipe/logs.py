"""Logging of a run: the main process talks, the others warn; benchmarks keep only their own steps."""

from __future__ import annotations

import logging
import sys

import datasets
import torch
import transformers
from transformers import TrainingArguments

from .checks import training_warnings

__all__ = ["setup_logging", "setup_quiet_logging"]

logger = logging.getLogger(__name__)


def setup_logging(training_args: TrainingArguments) -> None:
    """Log on the main process only (others at warning), for this package and the HF libraries; each process
    says its rank, device, torch threads and precision once."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    logging.getLogger("hf_transfer").setLevel(log_level)
    logging.getLogger("__main__").setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    logger.warning(
        f"Process rank: {training_args.process_index}, device: {training_args.device}, "
        f"n_processes: {training_args.world_size}, torch threads: {torch.get_num_threads()}, precision: {precision}"
    )
    if training_args.should_log:
        for message in training_warnings(training_args):
            logger.warning(message)


def setup_quiet_logging(script_logger: logging.Logger) -> None:
    """For benchmarks: the script's and hf_transfer's steps at INFO; transformers' load reports and Trainer chatter off."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=logging.WARNING
    )
    script_logger.setLevel(logging.INFO)
    logging.getLogger("hf_transfer").setLevel(logging.INFO)
    transformers.utils.logging.set_verbosity_error()
    datasets.utils.logging.set_verbosity_warning()
