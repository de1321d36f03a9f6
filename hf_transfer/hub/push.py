"""Pushing an output directory to the Hugging Face Hub, in the form the ecosystem expects.

What goes up: the model (safetensors + config with `id2label`) or the peft adapter, the processor,
`all_results.json`, `transfer_run.json` and a generated model card; never checkpoints, staging folders
or `training_args.bin`. For adapters of the built-in aliases, `base_model_name_or_path` is rewritten
in the uploaded copy to the base model's Hub id, so it resolves for anyone who has that model.

The local directory is never modified by a push. A failed push raises `HubPushError`, which says
what went wrong, how to fix it, and how to retry later (`python -m hf_transfer push OUTPUT_DIR`).
huggingface_hub already retries file uploads (5 attempts); repository creation and the final commit are
not retried there, so transient failures (HTTP 5xx, 408, 429, connection errors) get one retry here by
default (`--hub_max_retries 2` attempts), with back-off.

Every push is bounded in time: huggingface_hub's HTTP client has no timeout of its own (a server that accepts
the connection and never answers hung a push forever), so each request gets `request_timeout` seconds
(connect, read, write) and the whole push `deadline` seconds; past either, the usual error, output intact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..errors import ConfigError, HubPushError
from ..model_card import create_model_card
from ..run_record import RUN_INFO_FILE
from .requests import (
    TRANSIENT_STATUS,
    bounded_hub_requests,
    describe_hub_error,
    http_status,
    hub_is_offline,
    is_transient,
    with_retries,
    within_deadline,
)

__all__ = ["check_repo_id", "push_output_dir", "push_staged_folder"]

logger = logging.getLogger(__name__)


def _is_sentence_transformers_module(output_dir: Path, name: str) -> bool:
    """Whether `name` is a module folder listed in the output's sentence-transformers `modules.json`."""
    try:
        modules = json.loads((output_dir / "modules.json").read_text())
    except (OSError, ValueError):
        return False
    return any(isinstance(m, dict) and m.get("path") == name for m in modules)


def _stage(output_dir: Path, staging: Path, repo_id: str) -> None:
    """Copy what should be published, rewrite the adapter's base path, add the card."""
    for src in output_dir.iterdir():
        if (
            src.name.startswith(".")
            or src.name.startswith("checkpoint-")
            or src.name in ("training_args.bin", "runs", "merged")
        ):
            continue
        if src.is_file():
            shutil.copy2(src, staging / src.name)
        elif src.is_dir() and _is_sentence_transformers_module(output_dir, src.name):
            shutil.copytree(src, staging / src.name)  # e.g. 1_Pooling/ of a sentence-transformers folder
    adapter_config = staging / "adapter_config.json"
    info = json.loads((output_dir / RUN_INFO_FILE).read_text()) if (output_dir / RUN_INFO_FILE).is_file() else {}
    if adapter_config.is_file() and info.get("base_model_hub_id"):
        config = json.loads(adapter_config.read_text())
        config["base_model_name_or_path"] = info["base_model_hub_id"]
        adapter_config.write_text(json.dumps(config, indent=2, sort_keys=True))
    if info:
        create_model_card(output_dir, repo_id).save(staging / "README.md")


def check_repo_id(repo_id: str, flag: str = "--hub_model_id") -> None:
    """A Hub repository id (`name` or `namespace/name`), checked before anything is trained or uploaded."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(
            f"{flag} {repo_id!r} is not a valid Hub repository id ({str(err).splitlines()[0]}); use "
            "`your-name/model-name` with letters, digits, '-', '_' and '.'."
        ) from err


def push_output_dir(
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: Optional[str] = None,
    private: Optional[bool] = None,
    commit_message: Optional[str] = None,
    max_retries: int = 2,
    request_timeout: float = 60.0,
    deadline: float = 1800.0,
    flags: Optional[dict[str, str]] = None,
) -> str:
    """Create `repo_id` if needed and upload the publishable content of `output_dir`; returns the commit URL.

    `flags` names the options of the caller in messages (`token`, `repo_id`): a recipe's `--hub_token` /
    `--hub_model_id`, or `python -m hf_transfer push`'s `--token` / `--repo_id`.
    """
    flags = {"token": "--hub_token", "repo_id": "--hub_model_id", **(flags or {})}
    output_dir = Path(output_dir)
    retry_hint = f"The local output in {output_dir} is intact: push it later with `python -m hf_transfer push {output_dir} --repo_id {repo_id}`."
    if not output_dir.is_dir() or not any(
        (output_dir / name).is_file() for name in ("config.json", "adapter_config.json")
    ):
        raise HubPushError(
            f"{output_dir} holds no saved model (config.json or adapter_config.json); run a recipe with --output_dir {output_dir} first."
        )
    return push_staged_folder(
        lambda staging: _stage(output_dir, staging, repo_id),
        repo_id,
        token=token,
        private=private,
        commit_message=commit_message or f"Upload {output_dir.name} with hf_transfer",
        max_retries=max_retries,
        request_timeout=request_timeout,
        deadline=deadline,
        flags=flags,
        retry_hint=retry_hint,
    )


def push_staged_folder(
    stage: Callable[[Path], None],
    repo_id: str,
    *,
    repo_type: str = "model",
    token: Optional[str] = None,
    private: Optional[bool] = None,
    commit_message: str,
    max_retries: int = 2,
    request_timeout: float = 60.0,
    deadline: float = 1800.0,
    flags: dict[str, str],
    retry_hint: str,
) -> str:
    """Create `repo_id` (of `repo_type`) if needed and upload what `stage(folder)` writes into a temporary folder,
    every request bounded in time, transient failures retried; returns the commit URL. Every failure is one
    `HubPushError` naming the fix and `retry_hint`."""
    check_repo_id(repo_id, flags["repo_id"])
    if hub_is_offline():
        raise HubPushError(f"HF_HUB_OFFLINE is set, so nothing can be pushed: set HF_HUB_OFFLINE=0. {retry_hint}")
    api = HfApi(token=token)
    attempts = max(1, max_retries)

    def push() -> object:
        with_retries(
            lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token),
            f"Creating {repo_id}",
            attempts,
        )
        with tempfile.TemporaryDirectory(prefix="hf-transfer-push-") as staging:
            stage(Path(staging))
            return with_retries(
                lambda: api.upload_folder(
                    repo_id=repo_id,
                    repo_type=repo_type,
                    folder_path=staging,
                    commit_message=commit_message,
                    token=token,
                ),
                f"Uploading to {repo_id}",
                attempts,
            )

    try:
        with bounded_hub_requests(request_timeout):
            commit = within_deadline(push, deadline, f"Pushing to {repo_id}")
    except HfHubHTTPError as err:
        status = http_status(err)
        if status == 401:
            fix = f"The Hub token is missing or invalid: run `hf auth login` or pass a valid {flags['token']} (or set HF_TOKEN)."
        elif status == 403:
            fix = f"The token may not write to {repo_id}: use a token with write access, or a repo in your namespace."
        elif status == 409:
            fix = f"{repo_id} conflicts with an existing repository of another type or owner: choose another {flags['repo_id']}."
        elif status in TRANSIENT_STATUS:
            fix = f"The Hub kept failing after {attempts} attempt(s); try again later."
        else:
            fix = f"Check {flags['repo_id']} and the token."
        raise HubPushError(f"Pushing to {repo_id} failed ({describe_hub_error(err)}). {fix} {retry_hint}") from err
    except Exception as err:
        if not is_transient(err):
            raise
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        raise HubPushError(
            f"Pushing to {repo_id} failed: the Hub at {endpoint} did not answer in time or could not be reached "
            f"(after {attempts} attempt(s), {request_timeout:.0f} s per request, {deadline:.0f} s in all; "
            f"{describe_hub_error(err)}). Check the network (HF_HUB_OFFLINE must be unset to push). {retry_hint}"
        ) from err
    url = getattr(commit, "commit_url", None) or str(commit)
    logger.info("Pushed to %s", url)
    return url
