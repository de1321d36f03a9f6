"""Bounding every Hub call: a timeout per request, a deadline for the whole push, retries of transient errors.

huggingface_hub's HTTP client waits forever by default and retries some calls by itself (with its own sleeps), so
the bounds live in that client: `bounded_hub_requests` gives each request `min(request timeout, time left)` seconds,
refuses requests once the deadline has passed or Ctrl-C cancelled the push, stops an upload's body between chunks,
and judges every answer (a 429 whose Retry-After outlasts the deadline, an HTML page where the Hub's JSON belongs).
All of it runs in the caller's thread, so nothing of a push outlives its deadline or a Ctrl-C in the background.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import math
import re
import signal
import threading
import time
from typing import Callable, Iterator, Mapping, Optional, TypeVar

import httpx2
from huggingface_hub.errors import HfHubHTTPError

__all__ = [
    "TRANSIENT_STATUS",
    "HubDeadlineExceeded",
    "HubRateLimited",
    "HubAnswerNotJson",
    "PushDeadline",
    "bounded_hub_requests",
    "cancel_on_interrupt",
    "with_retries",
    "is_transient",
    "hub_cause",
    "http_status",
    "retry_after_seconds",
    "describe_hub_error",
    "hub_is_offline",
]

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_COMMIT_PATH = re.compile(r"^/api/(models|datasets|spaces)/.+/commit/")

T = TypeVar("T")


class HubDeadlineExceeded(TimeoutError):
    """The push's deadline passed (or Ctrl-C cancelled the push) before a request could be sent or finished."""


class HubRateLimited(Exception):
    """A 429 asked to wait (Retry-After) longer than the time left to the deadline: waiting could only fail."""

    def __init__(self, wait: float, left: float) -> None:
        super().__init__(f"HTTP 429 with Retry-After {wait:.0f} s, {max(left, 0):.0f} s left")
        self.wait, self.left = wait, left


class HubAnswerNotJson(Exception):
    """Something else answered in the Hub's place (a proxy's or captive portal's HTML page)."""

    def __init__(self, request: str, content_type: str) -> None:
        super().__init__(f"{request} answered {content_type or 'no Content-Type'}")
        self.request, self.content_type = request, content_type


class PushDeadline:
    """The end of one push, shared by all its requests (huggingface_hub's upload threads included).

    It also remembers whether the commit request is out without an answer: only then can a failed push have
    committed, and the push checks before it reports failure.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self.cancelled = False
        self.commit_pending = False
        self.commit_checked = False  # the Hub was asked whether an unanswered commit landed: it had not
        self.last_request = ""

    def left(self) -> float:
        return -math.inf if self.cancelled else self._end - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0

    def cancel(self) -> None:
        self.cancelled = True

    @contextlib.contextmanager
    def grace(self, seconds: float) -> Iterator[None]:
        """At least `seconds` more, past the deadline if need be, to ask the Hub whether a commit whose answer never
        came has landed; the deadline as before afterwards."""
        end = self._end
        self._end = max(end, time.monotonic() + seconds)
        try:
            yield
        finally:
            self._end = end

    def check(self, doing: str) -> float:
        """The seconds left, or `HubDeadlineExceeded` naming what could not be done."""
        left = self.left()
        if left <= 0:
            raise HubDeadlineExceeded(f"{'interrupted' if self.cancelled else 'no time left'} for {doing}")
        return left

    def sleep(self, seconds: float, doing: str) -> None:
        """Wait before a retry, unless the deadline would pass first (then nothing is gained by waiting)."""
        if seconds >= self.left():
            raise HubDeadlineExceeded(f"no time left to wait {seconds:.0f} s before {doing}")
        time.sleep(seconds)


def hub_cause(err: BaseException) -> BaseException:
    """The error behind huggingface_hub's wrappers (its LFS upload threads raise `RuntimeError` from the real one)."""
    while isinstance(err, RuntimeError) and err.__cause__ is not None:
        err = err.__cause__
    return err


def is_transient(err: BaseException) -> bool:
    err = hub_cause(err)
    if isinstance(err, (HubDeadlineExceeded, HubRateLimited, HubAnswerNotJson)):
        return False
    if isinstance(err, HfHubHTTPError):
        return http_status(err) in TRANSIENT_STATUS
    return isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError))


def http_status(err: BaseException) -> Optional[int]:
    return getattr(getattr(err, "response", None), "status_code", None)


def retry_after_seconds(headers: Mapping[str, str]) -> Optional[float]:
    """`Retry-After` as seconds from now: delay-seconds or an HTTP-date (huggingface_hub reads only the former)."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def with_retries(
    call: Callable[[], T], what: str, attempts: int, deadline: Optional[PushDeadline] = None, backoff: float = 1.0
) -> T:
    """`call()`, retried on transient errors after the Hub's Retry-After or an exponential back-off, within
    `attempts` and `deadline`."""
    deadline = deadline or PushDeadline(math.inf)
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:  # classified below; anything not transient is raised at once
            if not is_transient(err) or attempt == attempts or deadline.expired():
                raise
            cause = hub_cause(err)
            response = getattr(cause, "response", None)
            wait = retry_after_seconds(response.headers) if response is not None else None
            wait = backoff * 2 ** (attempt - 1) if wait is None else wait
            logger.warning(
                "%s failed (%s); retry %d/%d in %.0f s", what, describe_hub_error(err), attempt, attempts - 1, wait
            )
            deadline.sleep(wait, f"retrying after {describe_hub_error(err)}")
    raise AssertionError("unreachable")


def describe_hub_error(err: BaseException) -> str:
    err = hub_cause(err)
    status = http_status(err)
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"HTTP {status}: {text}" if status else f"{type(err).__name__}: {text}"


class _BoundedBody(httpx2.SyncByteStream):
    """A request body that stops between chunks once the deadline has passed or Ctrl-C cancelled the push, so a
    long upload (in huggingface_hub's upload threads too) outlives neither."""

    def __init__(self, stream: httpx2.SyncByteStream, deadline: PushDeadline, doing: str) -> None:
        self._stream, self._deadline, self._doing = stream, deadline, doing

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._deadline.check(self._doing)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def _event_hooks(timeout: float, deadline: PushDeadline) -> dict[str, list[Callable]]:
    def on_request(request: httpx2.Request) -> None:
        doing = f"{request.method} {request.url.path}"
        seconds = min(timeout, deadline.check(doing))
        request.extensions = {
            **request.extensions,
            "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds},
        }
        request.stream = _BoundedBody(request.stream, deadline, doing)
        deadline.last_request = doing
        if request.method == "POST" and _COMMIT_PATH.match(request.url.path):
            deadline.commit_pending = True

    def on_response(response: httpx2.Response) -> None:
        request = response.request
        if request.method == "POST" and _COMMIT_PATH.match(request.url.path):
            deadline.commit_pending = False
        if response.status_code == 429 and (wait := retry_after_seconds(response.headers)) is not None:
            response.headers["Retry-After"] = str(math.ceil(wait))  # an HTTP-date, as seconds huggingface_hub reads
            if wait > deadline.left():
                raise HubRateLimited(wait, deadline.left())
        content_type = response.headers.get("Content-Type", "")
        if response.is_success and "/api/" in request.url.path and content_type.startswith("text/html"):
            raise HubAnswerNotJson(f"{request.method} {request.url.path}", content_type.split(";")[0])

    return {"request": [on_request], "response": [on_response]}


@contextlib.contextmanager
def bounded_hub_requests(timeout: float, deadline: Optional[PushDeadline] = None) -> Iterator[PushDeadline]:
    """huggingface_hub's shared HTTP client with every request bounded by `timeout` seconds per connect / read /
    write and by `deadline` (see the module docstring), restored afterwards. Yields the deadline."""
    from huggingface_hub.utils import _http

    deadline = deadline or PushDeadline(math.inf)
    previous = _http._GLOBAL_CLIENT_FACTORY
    ours = _event_hooks(timeout, deadline)

    def factory() -> httpx2.Client:
        client = previous()
        client.timeout = httpx2.Timeout(timeout)
        hooks = client.event_hooks
        client.event_hooks = {name: [*hooks.get(name, []), *ours[name]] for name in ("request", "response")}
        return client

    _http.set_client_factory(factory)
    try:
        yield deadline
    except KeyboardInterrupt:
        # Closing the client would wait for the request another thread still has in flight (its connection's locks):
        # Ctrl-C detaches it instead, and the process ends without it.
        _http._GLOBAL_CLIENT = None  # no lock either: the other thread may hold it
        _http._GLOBAL_CLIENT_FACTORY = previous
        raise
    else:
        _http.set_client_factory(previous)
    finally:
        if _http._GLOBAL_CLIENT_FACTORY is factory:  # any other exception: restore (and close) as usual
            _http.set_client_factory(previous)


@contextlib.contextmanager
def cancel_on_interrupt(deadline: PushDeadline) -> Iterator[None]:
    """Ctrl-C cancels `deadline` before it raises `KeyboardInterrupt`: huggingface_hub joins its upload threads
    on the way out, and they stop at their next chunk or request instead of finishing the upload."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # someone else handles Ctrl-C: leave it to them
        yield
        return

    def on_interrupt(signum, frame) -> None:
        deadline.cancel()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def hub_is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
