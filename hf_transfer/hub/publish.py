"""A recipe's end on the Hub side: the push request and token taken out of `TrainingArguments` at the start,
then the run record, the model card and (when asked) the push at the end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, HubPushError
from ..model_card import create_model_card
from ..run_record import RunRecord
from .arguments import HubArguments
from .push import check_repo_id, push_output_dir
from .requests import hub_is_offline

__all__ = ["take_hub_token", "publish_run"]


def take_hub_token(training_args) -> tuple[bool, Optional[str]]:
    """Take the push request and token out of `TrainingArguments` before any `Trainer` sees them.

    The push then happens once, at the end, with a complete card (`publish_run`), and the token is
    never pickled into `training_args.bin` or written to a checkpoint.
    Returns `(push_requested, token)`.
    """
    push, token = bool(training_args.push_to_hub), training_args.hub_token
    if push:  # what would fail at the end of the run fails now, before any training
        if hub_is_offline():
            raise ConfigError(
                "--push_to_hub with HF_HUB_OFFLINE=1 could push nothing at the end of the run: unset "
                "HF_HUB_OFFLINE, or drop --push_to_hub and push later with `python -m hf_transfer push`."
            )
        repo_id = training_args.hub_model_id or Path(training_args.output_dir).resolve().name
        check_repo_id(
            repo_id,
            "--hub_model_id" if training_args.hub_model_id else "--hub_model_id (default: the --output_dir name)",
        )
    training_args.push_to_hub = False
    training_args.hub_token = None
    return push, token


def publish_run(
    training_args,
    hub_args: HubArguments,
    *,
    push: bool,
    token: Optional[str],
    record: RunRecord,
    push_merged: bool = False,
) -> Optional[str]:
    """Main process only: record the run, write the model card into the output dir, push when asked.

    Returns the commit URL of the push, if any.
    """

    if not training_args.should_save:
        return None
    output_dir = Path(training_args.output_dir)
    record.save(output_dir)
    repo_id = training_args.hub_model_id or output_dir.resolve().name
    create_model_card(output_dir, repo_id).save(output_dir / "README.md")
    merged = output_dir / "merged"
    if merged.is_dir():
        record.merged().save(merged)
        for name in ("all_results.json",):
            if (output_dir / name).is_file():
                shutil.copy2(output_dir / name, merged / name)
        create_model_card(merged, f"{repo_id}-merged").save(merged / "README.md")
    if not push:
        return None
    url = push_output_dir(
        output_dir,
        repo_id,
        token=token,
        private=training_args.hub_private_repo,
        max_retries=hub_args.hub_max_retries,
        request_timeout=hub_args.hub_request_timeout,
        deadline=hub_args.hub_deadline,
    )
    if push_merged:
        if not merged.is_dir():
            raise HubPushError("--push_merged needs a merged model: add --merge_lora true to the LoRA run.")
        push_output_dir(
            merged,
            f"{repo_id}-merged",
            token=token,
            private=training_args.hub_private_repo,
            max_retries=hub_args.hub_max_retries,
            request_timeout=hub_args.hub_request_timeout,
            deadline=hub_args.hub_deadline,
        )
    return url
