"""Bounding every Hub call: a timeout per request, a deadline for the whole push, retries of transient errors."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterator, Optional, TypeVar

from huggingface_hub.errors import HfHubHTTPError

__all__ = [
    "TRANSIENT_STATUS",
    "bounded_hub_requests",
    "within_deadline",
    "with_retries",
    "is_transient",
    "http_status",
    "describe_hub_error",
    "hub_is_offline",
]

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}

T = TypeVar("T")


def is_transient(err: Exception) -> bool:
    if isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        return status in TRANSIENT_STATUS
    name = type(err).__name__
    return isinstance(err, (ConnectionError, TimeoutError, OSError)) or "Connect" in name or "Timeout" in name


def http_status(err: Exception) -> Optional[int]:
    return getattr(getattr(err, "response", None), "status_code", None)


def with_retries(call: Callable[[], T], what: str, attempts: int, backoff: float = 1.0) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:  # classified below; anything not transient is raised at once
            if not is_transient(err) or attempt == attempts:
                raise
            wait = backoff * 2 ** (attempt - 1)
            logger.warning(
                "%s failed (%s); retry %d/%d in %.0f s", what, describe_hub_error(err), attempt, attempts - 1, wait
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def describe_hub_error(err: Exception) -> str:
    status = http_status(err)
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"HTTP {status}: {text}" if status else f"{type(err).__name__}: {text}"


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


def within_deadline(call: Callable[[], T], deadline: float, what: str) -> T:
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


def hub_is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
