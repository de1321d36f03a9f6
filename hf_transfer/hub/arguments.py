"""`HubArguments`: the Hub options every recipe adds to `TrainingArguments`' own push flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["HubArguments"]


@dataclass
class HubArguments:
    """Hub options beyond `TrainingArguments`' `--push_to_hub`, `--hub_model_id`, `--hub_private_repo`, `--hub_token`.

    Args:
        hub_max_retries (`int`): attempts for transient Hub errors (5xx, timeouts, connection errors).
        hub_request_timeout (`float`): seconds per Hub request (connect, send, answer).
        hub_deadline (`float`): seconds for the whole push.
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
    hub_deadline: float = field(default=1800.0, metadata={"help": "Seconds the whole push may take."})

    def __post_init__(self) -> None:
        if self.hub_max_retries < 1 or self.hub_request_timeout <= 0 or self.hub_deadline <= 0:
            raise ConfigError(
                "--hub_max_retries must be at least 1, --hub_request_timeout and --hub_deadline positive."
            )
