"""`HubArguments`: the Hub options every recipe adds to `TrainingArguments`' own push flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["HubArguments", "HUB_FLAGS", "check_push_limits"]

# The options of a recipe that a push's messages name; `python -m hf_transfer push` names its own.
HUB_FLAGS = {
    "token": "--hub_token",
    "repo_id": "--hub_model_id",
    "max_retries": "--hub_max_retries",
    "timeout": "--hub_request_timeout",
    "deadline": "--hub_deadline",
}


def check_push_limits(max_retries: int, request_timeout: float, deadline: float, flags: dict[str, str]) -> None:
    """The bounds of a push, checked before anything is staged or sent: a deadline that has passed before the push
    starts could only report failure, whatever happens."""
    if not max_retries >= 1:
        raise ConfigError(f"{flags['max_retries']} must be at least 1 (got {max_retries}): 1 means no retry.")
    for name, value, example in (("timeout", request_timeout, 60), ("deadline", deadline, 1800)):
        if not value > 0:  # NaN too
            raise ConfigError(
                f"{flags[name]} must be a positive number of seconds (got {value:g}), e.g. {flags[name]} {example}."
            )


@dataclass
class HubArguments:
    """Hub options beyond `TrainingArguments`' `--push_to_hub`, `--hub_model_id`, `--hub_private_repo`, `--hub_token`.

    Args:
        hub_max_retries (`int`): attempts for transient Hub errors (5xx, timeouts, connection errors).
        hub_request_timeout (`float`): seconds per Hub request (connect, send, answer).
        hub_deadline (`float`): seconds for the whole push: no request waits past it, and a commit that got no
            answer in time is checked on the Hub before the push counts as failed.
    """

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
    hub_deadline: float = field(
        default=1800.0,
        metadata={"help": "Seconds the whole push may take; every request waits at most the time left (positive)."},
    )

    def __post_init__(self) -> None:
        check_push_limits(self.hub_max_retries, self.hub_request_timeout, self.hub_deadline, HUB_FLAGS)
