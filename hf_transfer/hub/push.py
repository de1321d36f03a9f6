"""Pushing an output directory to the Hugging Face Hub, in the form the ecosystem expects.

What goes up: the model (safetensors + config with `id2label`) or the peft adapter, the processor,
`all_results.json`, `transfer_run.json` and a generated model card; never checkpoints, staging folders
or `training_args.bin`. For adapters of the built-in aliases, `base_model_name_or_path` is rewritten
in the uploaded copy to the base model's Hub id, so it resolves for anyone who has that model.

The local directory is never modified by a push: what goes up is staged in a temporary folder first (before
anything is sent, so a full disk is named as such). A failed push raises `HubPushError`, one line that says what
went wrong, how to fix it, and how to retry later (`python -m hf_transfer push OUTPUT_DIR`).
huggingface_hub already retries file uploads (5 attempts); repository creation and the final commit are
not retried there, so transient failures (HTTP 5xx, 408, 429, connection errors) get one retry here by
default (`--hub_max_retries 2` attempts), after the Hub's Retry-After or a back-off.

Every push is bounded in time (`requests`): each request waits at most `min(request_timeout, time left)`, and
once `deadline` seconds have passed no request is sent, a retry's wait that would outlast it is not waited, and the
push ends with the usual error, output intact. A deadline never turns a landed commit into a reported failure: a
commit sent without an answer is checked on the Hub (one request, a few seconds' grace) before it counts as failed.
Ctrl-C stops a push at once, as `HubPushInterrupted` (a `KeyboardInterrupt`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..errors import ConfigError, HubPushError
from ..model_card import create_model_card
from ..run_record import RUN_INFO_FILE, RunRecord
from .arguments import HUB_FLAGS, check_push_limits
from .requests import (
    TRANSIENT_STATUS,
    HubAnswerNotJson,
    HubDeadlineExceeded,
    HubRateLimited,
    PushDeadline,
    bounded_hub_requests,
    cancel_on_interrupt,
    describe_hub_error,
    http_status,
    hub_cause,
    hub_is_offline,
    is_transient,
    with_retries,
)

__all__ = ["HubPushInterrupted", "check_repo_id", "push_output_dir", "push_staged_folder"]

logger = logging.getLogger(__name__)

# Seconds past the deadline to ask the Hub whether a commit whose answer never came has landed.
COMMIT_CHECK_SECONDS = 5.0


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
    record = RunRecord.load(output_dir) if (output_dir / RUN_INFO_FILE).is_file() else None
    if adapter_config.is_file() and record is not None and record.base_model_hub_id:
        config = json.loads(adapter_config.read_text())
        config["base_model_name_or_path"] = record.base_model_hub_id
        adapter_config.write_text(json.dumps(config, indent=2, sort_keys=True))
    if record is not None:
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

    `flags` names the options of the caller in messages (`token`, `repo_id`, `max_retries`, `timeout`, `deadline`):
    a recipe's `--hub_token` / `--hub_model_id` / ... (the default), or `python -m hf_transfer push`'s own.
    """
    flags = {**HUB_FLAGS, **(flags or {})}
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


class HubPushInterrupted(KeyboardInterrupt):
    """Ctrl-C during a push: still a `KeyboardInterrupt`, with the one line to print (what state the Hub may be
    in, how to push later)."""


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
    `HubPushError` naming the fix and `retry_hint`; Ctrl-C is `HubPushInterrupted`.

    `flags` names the caller's options (`token`, `repo_id`, `max_retries`, `timeout`, `deadline`; a recipe's by
    default)."""
    flags = {**HUB_FLAGS, **flags}
    check_repo_id(repo_id, flags["repo_id"])
    check_push_limits(max_retries, request_timeout, deadline, flags)
    if hub_is_offline():
        raise HubPushError(f"HF_HUB_OFFLINE is set, so nothing can be pushed: set HF_HUB_OFFLINE=0. {retry_hint}")
    limit = PushDeadline(deadline)
    api = HfApi(token=token)
    repo_url = f"{api.endpoint}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
    with _stage_in_temp_folder(stage, repo_id, retry_hint) as staging:
        try:
            with bounded_hub_requests(request_timeout, limit), cancel_on_interrupt(limit):
                url = _interruptibly(
                    lambda: _create_and_upload(
                        api, staging, repo_id, repo_type, private, token, commit_message, max_retries, limit, repo_url
                    )
                )
        except KeyboardInterrupt as err:
            during = (
                f" while the commit was on its way: look at {repo_url}/commits/main to see whether it landed"
                if limit.commit_pending
                else "; nothing was committed"
            )
            raise HubPushInterrupted(f"Pushing to {repo_id} was interrupted (Ctrl-C){during}. {retry_hint}") from err
        except Exception as err:
            explained = _explain(err, repo_id, repo_url, limit, max_retries, request_timeout, flags, retry_hint)
            if explained is None:
                raise
            raise explained from err
    logger.info("Pushed to %s", url)
    return url


def _interruptibly(work: Callable[[], str]) -> str:
    """`work()` in a daemon thread while this one waits in short joins: Ctrl-C lands here at once, even while the
    request under way sits in a socket read or huggingface_hub joins its upload threads (either can last the whole
    request timeout). The work's result, or its exception, comes back here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=run, name="hf_transfer-push", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@contextlib.contextmanager
def _stage_in_temp_folder(stage: Callable[[Path], None], repo_id: str, retry_hint: str) -> Iterator[Path]:
    """A temporary folder holding what `stage` writes, made before anything is sent (a full disk leaves no empty
    repository behind) and reported as the disk's problem, not the network's."""
    try:
        staging = tempfile.TemporaryDirectory(prefix="hf-transfer-push-")
        try:
            stage(Path(staging.name))
        except BaseException:
            staging.cleanup()
            raise
    except OSError as err:
        where = tempfile.gettempdir()
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            problem = f"the temporary directory {where} is full ({err.strerror})"
            fix = "Free space there, or set TMPDIR to a folder on a disk with room for the model"
        else:
            problem = f"the files could not be staged in the temporary directory {where} ({err})"
            fix = "Check that folder's free space and permissions, or set TMPDIR to another folder"
        raise HubPushError(
            f"Pushing to {repo_id} failed before anything was sent: {problem}. {fix}. {retry_hint}"
        ) from err
    with staging:
        yield Path(staging.name)


def _create_and_upload(
    api: HfApi,
    staging: Path,
    repo_id: str,
    repo_type: str,
    private: Optional[bool],
    token: Optional[str],
    commit_message: str,
    attempts: int,
    limit: PushDeadline,
    repo_url: str,
) -> str:
    """The requests of a push; a commit sent without an answer is checked on the Hub before it counts as failed."""
    with_retries(
        lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token),
        f"Creating {repo_id}",
        attempts,
        limit,
    )
    try:  # the head before the commit: what tells, later, whether a commit without an answer landed
        head = with_retries(
            lambda: api.repo_info(repo_id, repo_type=repo_type, token=token).sha, f"Reading {repo_id}", attempts, limit
        )
    except HfHubHTTPError as err:  # the upload says what is wrong, if anything is
        logger.debug("The head of %s could not be read (%s)", repo_id, describe_hub_error(err))
        head = None
    try:
        commit = with_retries(
            lambda: api.upload_folder(
                repo_id=repo_id, repo_type=repo_type, folder_path=staging, commit_message=commit_message, token=token
            ),
            f"Uploading to {repo_id}",
            attempts,
            limit,
        )
    except Exception as err:
        if not limit.commit_pending:
            raise
        landed = _landed_commit(api, repo_id, repo_type, token, head, limit, err)
        if landed is None:
            raise
        logger.warning("The Hub's answer to the commit did not come (%s), but it landed.", describe_hub_error(err))
        return f"{repo_url}/commit/{landed}"
    return getattr(commit, "commit_url", None) or str(commit)


class _CommitUnknown(Exception):
    """The commit was sent, its answer never came, and asking the Hub whether it landed failed too."""


def _landed_commit(
    api: HfApi,
    repo_id: str,
    repo_type: str,
    token: Optional[str],
    head: Optional[str],
    limit: PushDeadline,
    err: Exception,
) -> Optional[str]:
    """The new head if the unanswered commit landed, None if the head has not moved; `_CommitUnknown` when the Hub
    cannot tell. One request, with a short grace past the deadline (`COMMIT_CHECK_SECONDS`)."""
    commit_request, now, why = limit.last_request, None, "the head before the commit is unknown"
    if head is not None:
        try:
            with limit.grace(COMMIT_CHECK_SECONDS):
                now = api.repo_info(repo_id, repo_type=repo_type, token=token).sha
        except Exception as check:
            why = describe_hub_error(check)
        limit.last_request = commit_request  # the request the messages are about
    if now is None:
        raise _CommitUnknown(
            f"{commit_request} got no answer ({describe_hub_error(err)}) and whether the commit landed could not "
            f"be checked ({why})"
        )
    limit.commit_pending = False
    limit.commit_checked = True
    return now if now != head else None


def _explain(
    err: Exception,
    repo_id: str,
    repo_url: str,
    limit: PushDeadline,
    attempts: int,
    request_timeout: float,
    flags: dict[str, str],
    retry_hint: str,
) -> Optional[HubPushError]:
    """The one line for a failed push (None: not a Hub problem, the error stands as it is)."""
    cause = hub_cause(err)
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    deadline = f"{limit.seconds:g} s ({flags['deadline']})"
    if isinstance(cause, _CommitUnknown):
        return HubPushError(
            f"Pushing to {repo_id} may have failed: {cause}. Look at {repo_url}/commits/main before pushing "
            f"again. {retry_hint}"
        )
    if isinstance(cause, HubRateLimited):
        return HubPushError(
            f"Pushing to {repo_id} stopped: the Hub is rate-limiting (HTTP 429) and asks to wait {cause.wait:.0f} s "
            f"(Retry-After), more than the {max(cause.left, 0):.0f} s left of {flags['deadline']} {limit.seconds:g}. "
            f"Push again after that wait, or raise {flags['deadline']}. {retry_hint}"
        )
    if isinstance(cause, (HubAnswerNotJson, json.JSONDecodeError)):
        if isinstance(cause, HubAnswerNotJson):
            what = f"answered {cause.request} with an HTML page ({cause.content_type})"
        else:
            what = f"answered {limit.last_request or 'a request'} with something else"
        return HubPushError(
            f"Pushing to {repo_id} failed: {endpoint} {what}, not JSON: a proxy or captive portal is answering in "
            f"the Hub's place, or HF_ENDPOINT does not point at a Hub. Check HF_ENDPOINT (now {endpoint}) and the "
            f"proxy settings (HTTPS_PROXY, NO_PROXY), or log in to the network. {retry_hint}"
        )
    checked = "; the commit got no answer and had not landed when checked" if limit.commit_checked else ""
    if isinstance(cause, HubDeadlineExceeded) or (is_transient(cause) and limit.expired()):
        if isinstance(cause, HubDeadlineExceeded):
            what = str(cause)
        else:
            what = f"{limit.last_request} ended in {describe_hub_error(cause)}"
        return HubPushError(
            f"Pushing to {repo_id} did not finish within {deadline}: {what}{checked or '; nothing was committed'}. "
            f"Raise {flags['deadline']}, or check the network and the Hub at {endpoint}. {retry_hint}"
        )
    if isinstance(cause, HfHubHTTPError):
        status = http_status(cause)
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
        return HubPushError(f"Pushing to {repo_id} failed ({describe_hub_error(cause)}). {fix} {retry_hint}")
    if is_transient(cause):
        return HubPushError(
            f"Pushing to {repo_id} failed: the Hub at {endpoint} did not answer in time or could not be reached "
            f"(after {attempts} attempt(s), {request_timeout:g} s per request, {limit.seconds:g} s in all; "
            f"{describe_hub_error(cause)}){checked}. Check the network (HF_HUB_OFFLINE must be unset to push). "
            f"{retry_hint}"
        )
    return None
