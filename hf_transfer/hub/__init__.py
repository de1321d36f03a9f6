"""The Hugging Face Hub: pushing an output directory in the form the ecosystem expects, every call bounded in time.

`arguments` (`HubArguments`), `requests` (timeouts, the deadline, retries, Retry-After, answers that are not the
Hub's), `push` (what goes up, staged so the local folder is never modified), `publish` (a recipe's record, card and
push at its end).
"""

from ..errors import HubPushError
from .arguments import HubArguments
from .publish import publish_run, take_hub_token
from .push import HubPushInterrupted, check_repo_id, push_output_dir, push_staged_folder
from .requests import bounded_hub_requests, hub_is_offline

__all__ = [
    "HubArguments",
    "HubPushError",
    "HubPushInterrupted",
    "bounded_hub_requests",
    "hub_is_offline",
    "check_repo_id",
    "push_output_dir",
    "push_staged_folder",
    "take_hub_token",
    "publish_run",
]
