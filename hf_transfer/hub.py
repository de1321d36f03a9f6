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

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from .errors import ConfigError, HfTransferError
from .model_card import create_model_card
from .run_record import RUN_INFO_FILE, RunRecord

__all__ = [
    "HubArguments",
    "HubPushError",
    "bounded_hub_requests",
    "check_repo_id",
    "push_output_dir",
    "take_hub_token",
    "publish_run",
]

logger = logging.getLogger(__name__)

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}

T = TypeVar("T")


class HubPushError(HfTransferError):
    """A push to the Hub failed; the local output directory is intact."""


@dataclass
class HubArguments:
    """Hub options beyond `TrainingArguments`' `--push_to_hub`, `--hub_model_id`, `--hub_private_repo`, `--hub_token`.

    Args:
        push_merged (`bool`): with LoRA and `--merge_lora`, also push the merged model to `<hub_model_id>-merged`.
        hub_max_retries (`int`): attempts for transient Hub errors (5xx, timeouts, connection errors).
        hub_request_timeout (`float`): seconds per Hub request (connect, send, answer).
        hub_deadline (`float`): seconds for the whole push.
    """

    push_merged: bool = field(
        default=False,
        metadata={
            "help": "With --merge_lora and --push_to_hub: also push the merged model to `<hub_model_id>-merged`."
        },
    )
    hub_max_retries: int = field(
        default=2,
        metadata={
            "help": "Attempts of a Hub call that fails with a transient error (5xx, timeout); huggingface_hub "
            "already retries file uploads, so 2 (one retry) by default."
        },
    )
    hub_request_timeout: float = field(
        default=60.0, metadata={"help": "Seconds one Hub request may take to connect, send or answer."}
    )
    hub_deadline: float = field(default=1800.0, metadata={"help": "Seconds the whole push may take."})

    def __post_init__(self) -> None:
        if self.hub_max_retries < 1 or self.hub_request_timeout <= 0 or self.hub_deadline <= 0:
            raise ConfigError(
                "--hub_max_retries must be at least 1, --hub_request_timeout and --hub_deadline positive."
            )


def _is_transient(err: Exception) -> bool:
    if isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        return status in _TRANSIENT_STATUS
    name = type(err).__name__
    return isinstance(err, (ConnectionError, TimeoutError, OSError)) or "Connect" in name or "Timeout" in name


def _status(err: Exception) -> Optional[int]:
    return getattr(getattr(err, "response", None), "status_code", None)


def _with_retries(call: Callable[[], T], what: str, attempts: int, backoff: float = 1.0) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:  # classified below; anything not transient is raised at once
            if not _is_transient(err) or attempt == attempts:
                raise
            wait = backoff * 2 ** (attempt - 1)
            logger.warning("%s failed (%s); retry %d/%d in %.0f s", what, _describe(err), attempt, attempts - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _describe(err: Exception) -> str:
    status = _status(err)
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"HTTP {status}: {text}" if status else f"{type(err).__name__}: {text}"


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


@contextlib.contextmanager
def bounded_hub_requests(timeout: float) -> Iterator[None]:
    """huggingface_hub's shared HTTP client with `timeout` seconds per connect / read / write (its default client
    waits forever), restored afterwards."""
    import httpx2
    from huggingface_hub.utils import _http

    previous = _http._GLOBAL_CLIENT_FACTORY

    def factory():
        client = previous()
        client.timeout = httpx2.Timeout(timeout)
        return client

    _http.set_client_factory(factory)
    try:
        yield
    finally:
        _http.set_client_factory(previous)


def _within_deadline(call: Callable[[], T], deadline: float, what: str) -> T:
    """`call()` in a worker thread, given up after `deadline` seconds (the thread is left to its request timeout)."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-transfer-push")
    try:
        return pool.submit(call).result(timeout=deadline)
    except FutureTimeout:
        raise TimeoutError(f"{what} did not finish within {deadline:.0f} s") from None
    finally:
        pool.shutdown(wait=False)


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


def hub_is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


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
    check_repo_id(repo_id, flags["repo_id"])
    if hub_is_offline():
        raise HubPushError(f"HF_HUB_OFFLINE is set, so nothing can be pushed: set HF_HUB_OFFLINE=0. {retry_hint}")
    api = HfApi(token=token)
    attempts = max(1, max_retries)

    def push() -> object:
        _with_retries(
            lambda: api.create_repo(repo_id, private=private, exist_ok=True, token=token),
            f"Creating {repo_id}",
            attempts,
        )
        with tempfile.TemporaryDirectory(prefix="hf-transfer-push-") as staging:
            _stage(output_dir, Path(staging), repo_id)
            return _with_retries(
                lambda: api.upload_folder(
                    repo_id=repo_id,
                    folder_path=staging,
                    commit_message=commit_message or f"Upload {output_dir.name} with hf_transfer",
                    token=token,
                ),
                f"Uploading to {repo_id}",
                attempts,
            )

    try:
        with bounded_hub_requests(request_timeout):
            commit = _within_deadline(push, deadline, f"Pushing to {repo_id}")
    except HfHubHTTPError as err:
        status = _status(err)
        if status == 401:
            fix = f"The Hub token is missing or invalid: run `hf auth login` or pass a valid {flags['token']} (or set HF_TOKEN)."
        elif status == 403:
            fix = f"The token may not write to {repo_id}: use a token with write access, or a repo in your namespace."
        elif status == 409:
            fix = f"{repo_id} conflicts with an existing repository of another type or owner: choose another {flags['repo_id']}."
        elif status in _TRANSIENT_STATUS:
            fix = f"The Hub kept failing after {attempts} attempt(s); try again later."
        else:
            fix = f"Check {flags['repo_id']} and the token."
        raise HubPushError(f"Pushing to {repo_id} failed ({_describe(err)}). {fix} {retry_hint}") from err
    except Exception as err:
        if not _is_transient(err):
            raise
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        raise HubPushError(
            f"Pushing to {repo_id} failed: the Hub at {endpoint} did not answer in time or could not be reached "
            f"(after {attempts} attempt(s), {request_timeout:.0f} s per request, {deadline:.0f} s in all; "
            f"{_describe(err)}). Check the network (HF_HUB_OFFLINE must be unset to push). {retry_hint}"
        ) from err
    url = getattr(commit, "commit_url", None) or str(commit)
    logger.info("Pushed %s to %s", output_dir, url)
    return url


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
) -> Optional[str]:
    """Main process only: record the run, write the model card into the output dir, push when asked.

    Returns the commit URL of the push, if any.
    """
    from .model_card import create_model_card

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
    if hub_args.push_merged:
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
