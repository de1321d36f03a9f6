"""A small Hugging Face Hub-compatible HTTP server for the tests (stdlib only).

Pushes and downloads in the tests go through the *real* ``huggingface_hub`` client (no monkeypatching of
client methods): the client is pointed at this server with ``HF_ENDPOINT``.

Usage
-----
::

    with HubServer(tokens={"hf_test": "test-user"}) as hub:       # or hub.start() / hub.stop()
        api = HfApi(endpoint=hub.url, token="hf_test")
        api.create_repo("test-user/tiny")
        api.upload_folder(repo_id="test-user/tiny", folder_path=...)
        hub.count("commit")            # requests received on the /commit route
        hub.fail_next(1, status=500)   # the next request answers 500

In the test-suite use the ``hub_server`` fixture of ``tests/conftest.py`` instead: it sets the
environment (see "Configuration" below) so that ``PreTrainedModel.push_to_hub``, ``from_pretrained``,
``snapshot_download``, ``Trainer.push_to_hub`` and subprocesses all talk to the server.

Routes (what huggingface_hub 2.4 / transformers 5 / peft use; route names as counted by ``count()``)
-----------------------------------------------------------------------------------------------------
* ``whoami``: ``GET /api/whoami-v2``
* ``agent_harnesses``: ``GET /api/agent-harnesses`` (empty registry; huggingface_hub fetches it daily)
* ``create_repo``: ``POST /api/repos/create`` (409 with ``{"error", "url"}`` when it exists)
* ``delete_repo``: ``DELETE /api/repos/delete``
* ``validate_yaml``: ``POST /api/validate-yaml`` (README.md front matter; only checks it is closed)
* ``repo_info``: ``GET /api/{models|datasets|spaces}/{repo}[/revision/{rev}]`` (``id``, ``sha``,
  ``private``, ``siblings``; sizes/LFS info with ``?blobs=true``)
* ``tree``: ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]`` (``list_repo_files``, ``snapshot_download``)
* ``paths_info``: ``POST /api/{type}s/{repo}/paths-info/{rev}``
* ``refs``, ``commits``: ``GET /api/{type}s/{repo}/refs``, ``GET /api/{type}s/{repo}/commits/{rev}``
* ``settings``: ``PUT /api/{type}s/{repo}/settings`` (``private`` / ``visibility``)
* ``preupload``: ``POST /api/{type}s/{repo}/preupload/{rev}`` (regular vs lfs per file, remote oid)
* ``lfs_batch``: ``POST /[datasets/|spaces/]{repo}.git/info/lfs/objects/batch`` (``transfer: basic``,
  upload href on this server; no action for blobs already stored)
* ``lfs_upload``: ``PUT /lfs-upload/{oid}`` (sha256 verified, 400 on mismatch)
* ``commit``: ``POST /api/{type}s/{repo}/commit/{rev}`` (NDJSON ``header``/``file``/``lfsFile``/
  ``deletedFile``/``deletedFolder``; 412 on a stale ``parentCommit``; ``create_pr`` answers 501)
* ``resolve``: ``GET|HEAD /[datasets/|spaces/]{repo}/resolve/{rev}/{path}`` (``ETag``, ``X-Repo-Commit``,
  ``Content-Length``, ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, ``Range``; 404 with
  ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``)

Anything else answers 404 (no ``X-Error-Code``) and is recorded in ``HubServer.unhandled``.

Storage: a temp directory; content-addressed blobs under ``blobs/{sha256}``, and the current files of every
branch written as plain files under ``{models|datasets|spaces}/{namespace}/{name}/{branch}/`` (handy to
inspect). Each commit keeps its own file map, so every past commit sha stays downloadable. Like the real
Hub, ``create_repo`` makes an initial commit holding the default ``.gitattributes`` (pass
``initial_gitattributes=False`` to skip it), so ``list_repo_files`` includes ``.gitattributes``.
Regular-vs-LFS: LFS when the path matches a ``filter=lfs`` pattern of the repo's ``.gitattributes`` (the
default one lists ``*.safetensors``, ``*.bin``, ``*.pt``...), when the file is >= 10 MiB, or when its
512-byte sample contains a NUL byte (binary).

Auth: ``HubServer(tokens=...)`` takes ``None`` (auth disabled: everything allowed, the user is
``default_user``), an iterable of valid tokens (all mapped to ``default_user``) or a ``{token: username}``
mapping. With tokens set:

* any request carrying an *invalid* ``Authorization: Bearer`` answers 401 with
  ``X-Error-Message: Invalid credentials in Authorization header`` (as the Hub does), which
  huggingface_hub raises as a plain ``HfHubHTTPError`` (status 401);
* write routes without a token answer 401 ``Invalid username or password.`` (huggingface_hub raises
  ``RepositoryNotFoundError`` for those on repo URLs, like on the real Hub);
* private repos are only visible with a valid token (else 404 ``RepoNotFound``);
* there is no ownership model: a valid token may create/write repos in any namespace (organisations
  included); without ``organization``, ``create_repo`` uses the token's user as namespace;
* the LFS upload ``PUT`` carries no auth (like a pre-signed S3 URL): only oids announced by an
  authorised ``lfs_batch`` call are accepted.

Fault injection / observation:

* ``fail_next(n=1, status=500, route=None, method=None, writes_only=False, headers=None, body=None,
  content_type="text/html")``: the next ``n`` matching requests answer ``status`` (JSON ``{"error": ...}``, or
  ``body`` as ``content_type``: e.g. ``fail_next(status=200, body="<html>...")``, a proxy's login page)
  without being processed. ``headers={"Retry-After": "5"}`` with ``status=429`` is a rate limit.
* ``hang_next(n=1, seconds=60, route=None, method=None, after_processing=False)``: the next ``n`` matching
  requests wait ``seconds`` before anything happens, then get no answer at all (the connection is closed,
  nothing processed: a Hub or proxy that stopped answering); with ``after_processing=True`` the request is
  processed at once (a commit lands) and only its JSON answer waits ``seconds``. ``clear_faults()``,
  ``reset()`` and ``stop()`` end every wait early (the request then gets no answer), so a hang never
  outlives its test.
* ``count(route=None, method=None, status=None)``, ``calls`` (a ``Counter`` per route name),
  ``requests`` (list of ``RequestRecord``), ``unhandled``; ``reset_stats()``; ``reset()`` also wipes repos.

Configuration: why the environment must be set before huggingface_hub is imported
---------------------------------------------------------------------------------
``huggingface_hub.constants`` reads ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET``, ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` once, at import time. Worse, the module-level helpers
(``huggingface_hub.create_repo``, ``model_info``, ... are bound methods of ``huggingface_hub.hf_api.api =
HfApi()``) and transformers' shared ``transformers.utils.hub.hf_api()`` instance copy
``constants.ENDPOINT`` when they are created. So patching ``constants.ENDPOINT`` in a fixture is not
enough. ``tests/conftest.py`` therefore, *at import time* (before any test module imports
transformers/peft/huggingface_hub):

1. picks a free port outside the kernel's ephemeral range (under pytest-xdist, from the worker's own
   slice of it, so that two workers never fix the same port) and fixes it for the whole session;
2. sets ``HF_ENDPOINT=http://127.0.0.1:PORT`` and ``HF_HUB_DISABLE_XET=1`` in ``os.environ`` (with hf_xet
   installed, uploads would otherwise go through the Xet pipeline). If huggingface_hub happens to be
   imported already, it also patches ``constants.ENDPOINT``/``HUGGINGFACE_CO_URL_TEMPLATE``/
   ``HF_HUB_DISABLE_XET`` and ``hf_api.api.endpoint`` (configuration, not client methods).

The ``hub_server`` fixture then (re)starts one session-wide server on that port, wipes its state, and with
``monkeypatch`` sets ``HF_TOKEN`` (valid test token), a fresh temp ``HF_HOME`` and ``HF_HUB_CACHE``
(env *and* the matching ``huggingface_hub.constants`` attributes, which are read at call time), unsets
``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``. Since all of this lives in ``os.environ``, a subprocess
(``subprocess.run([sys.executable, "recipes/x.py", "--push_to_hub", ...])`` with the default or a copied
``os.environ``) imports huggingface_hub fresh and picks up the same endpoint, token and cache: it needs
nothing else. Outside pytest, a child needs ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1`` and ``HF_TOKEN``.

Observed huggingface_hub 2.4 behaviour (measured against this server; see tests/test_hub_server.py)
-----------------------------------------------------------------------------------------------
``http_backoff`` retries 408/429/500/502/503/504 and timeouts/network errors (``httpx2.ConnectError``
included) up to 5 times, sleeping 1, 2, 4, 8, 8 s (~23 s in all; a ``Retry-After: N`` header makes each
sleep ``N + 1`` s, so ``fail_next(..., headers={"Retry-After": "0"})`` brings a full give-up down to ~6 s).

* Not retried (one 500 raises ``HfHubHTTPError`` with ``.response.status_code == 500`` at once; a dead
  server raises ``httpx2.ConnectError`` at once): ``create_repo``, ``repo_info``/``model_info``,
  ``list_repo_tree``/``list_repo_files``, ``whoami``, ``validate-yaml``, and the commit POST of
  ``create_commit`` (hence ``upload_file``, ``upload_folder`` without hf_xet, ``push_to_hub``,
  ``Trainer.push_to_hub``): nothing is committed.
* Retried with back-off: ``preupload``, the LFS batch, the LFS ``PUT``. ``fail_next(1, 500)`` on them costs
  one 1 s sleep and the push succeeds; if they keep failing, ``upload_file``/``push_to_hub`` raise
  ``HfHubHTTPError`` (500) after 7 requests and ~23 s, or ``httpx2.ConnectError`` after ~23 s when the
  server is down.
* ``hf_hub_download``: the first metadata ``HEAD`` is not retried, but when it fails (5xx or connection
  error) and nothing is cached, it is re-run with back-off: ``fail_next(1, 500, route="resolve")`` is
  transparent (2 HEADs + 1 GET); persistent failure or a dead server ends, after 7 HEADs and ~23 s, in
  ``LocalEntryNotFoundError`` chained (``__cause__``) to the ``HfHubHTTPError``/``ConnectError``.
  transformers' ``from_pretrained`` then raises ``OSError`` ("We couldn't connect to '<endpoint>'...").
* ``snapshot_download``: ``repo_info`` is not retried; a 500 or a dead server gives
  ``LocalEntryNotFoundError`` at once (nothing cached).
* 401 with ``X-Error-Message: Invalid credentials in Authorization header`` (wrong token) is a plain
  ``HfHubHTTPError``; ``whoami`` rewords it as "Invalid user token...". 401 without it on a repo URL
  (no token on a write) becomes ``RepositoryNotFoundError``. ``create_repo(exist_ok=True)`` swallows the
  409 (and reads ``url`` from its JSON body).
* Surprises: ``upload_folder`` calls ``/api/validate-yaml`` twice when README.md is in the folder; every
  process fetches ``GET /api/agent-harnesses`` once a day per HF_HOME; with ``hf_xet`` installed (it is)
  and ``HF_HUB_DISABLE_XET`` unset, ``upload_folder`` uses the Xet pipeline, which this server does not
  speak.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import fnmatch
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["HubServer", "RequestRecord", "DEFAULT_GITATTRIBUTES", "find_free_port", "worker_port_range"]

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files >= 10 MB with LFS
LFS_POINTER_SIZE = 134

# The default .gitattributes the Hub puts in every new model repo (abridged).
DEFAULT_GITATTRIBUTES = (
    "\n".join(
        f"{pattern} filter=lfs diff=lfs merge=lfs -text"
        for pattern in [
            "*.7z",
            "*.arrow",
            "*.bin",
            "*.bz2",
            "*.ckpt",
            "*.ftz",
            "*.gz",
            "*.h5",
            "*.joblib",
            "*.lfs.*",
            "*.mlmodel",
            "*.model",
            "*.msgpack",
            "*.npy",
            "*.npz",
            "*.onnx",
            "*.ot",
            "*.parquet",
            "*.pb",
            "*.pickle",
            "*.pkl",
            "*.pt",
            "*.pth",
            "*.rar",
            "*.safetensors",
            "saved_model/**/*",
            "*.tar.*",
            "*.tar",
            "*.tflite",
            "*.tgz",
            "*.wasm",
            "*.xz",
            "*.zip",
            "*.zst",
            "*tfevents*",
        ]
    )
    + "\n"
)

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_API = r"^/api/(?P<rtype>models|datasets|spaces)/" + _REPO
_PREFIX = r"^/(?:(?P<rtype>datasets|spaces)/)?" + _REPO

# (method(s), regex, route name, is_write)
_ROUTES: list[tuple[tuple[str, ...], re.Pattern, str, bool]] = [
    (("GET",), re.compile(r"^/api/whoami-v2$"), "whoami", False),
    (("GET",), re.compile(r"^/api/agent-harnesses$"), "agent_harnesses", False),
    (("POST",), re.compile(r"^/api/repos/create$"), "create_repo", True),
    (("DELETE",), re.compile(r"^/api/repos/delete$"), "delete_repo", True),
    (("POST",), re.compile(r"^/api/validate-yaml$"), "validate_yaml", False),
    (("POST",), re.compile(_API + r"/preupload/(?P<rev>[^/]+)$"), "preupload", True),
    (("POST",), re.compile(_API + r"/commit/(?P<rev>[^/]+)$"), "commit", True),
    (("GET",), re.compile(_API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree", False),
    (("POST",), re.compile(_API + r"/paths-info/(?P<rev>[^/]+)$"), "paths_info", False),
    (("GET",), re.compile(_API + r"/refs$"), "refs", False),
    (("GET",), re.compile(_API + r"/commits/(?P<rev>[^/]+)$"), "commits", False),
    (("PUT",), re.compile(_API + r"/settings$"), "settings", True),
    (("GET",), re.compile(_API + r"/revision/(?P<rev>[^/]+)$"), "repo_info", False),
    (("GET",), re.compile(_API + r"$"), "repo_info", False),
    (("POST",), re.compile(_PREFIX + r"\.git/info/lfs/objects/batch$"), "lfs_batch", True),
    (("PUT",), re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs_upload", False),
    (("GET", "HEAD"), re.compile(_PREFIX + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve", False),
]


def worker_port_range(low: int, high: int) -> tuple[int, int]:
    """This pytest-xdist worker's slice of [low, high) (the whole range outside xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if workers > 1 and index < workers:
        span = (high - low) // workers
        low, high = low + index * span, low + (index + 1) * span
    return low, high


def find_free_port(low: int = 20000, high: int = 32000) -> int:
    """A port bindable on 127.0.0.1, chosen outside the usual ephemeral range (32768-60999) so that
    outgoing client sockets are unlikely to grab it while the server is stopped.

    Under pytest-xdist every worker fixes its own port at import time, all at about the same moment, so
    each worker draws from its own slice of [low, high) (a shared draw once gave two workers the same
    port: whichever started its server second got EADDRINUSE), with OS entropy rather than a pid/time seed.
    """
    import random

    low, high = worker_port_range(low, high)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # fall back to an ephemeral one
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclasses.dataclass(frozen=True)
class _Entry:
    size: int
    sha256: str
    git_oid: str  # git blob sha1 (of the LFS pointer for LFS files)
    lfs: bool

    def tree_json(self, path: str) -> dict:
        d: dict[str, Any] = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.lfs:
            d["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": LFS_POINTER_SIZE}
        return d


@dataclasses.dataclass
class _Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str
    files: dict[str, _Entry]


@dataclasses.dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    refs: dict[str, str]  # branch -> commit oid
    commits: dict[str, _Commit]

    @property
    def author(self) -> str:
        return self.repo_id.split("/")[0] if "/" in self.repo_id else ""

    def resolve(self, rev: str) -> _Commit | None:
        oid = self.refs.get(rev)
        if oid is None and rev.startswith("refs/heads/"):
            oid = self.refs.get(rev[len("refs/heads/") :])
        if oid is None and rev in self.commits:
            oid = rev
        return self.commits.get(oid) if oid else None

    def history(self, commit: _Commit) -> list[_Commit]:
        out = []
        cur: _Commit | None = commit
        while cur is not None:
            out.append(cur)
            cur = self.commits.get(cur.parent) if cur.parent else None
        return out


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    route: str  # route name, "unhandled" when no route matched
    status: int
    user: str | None
    at: float = 0.0  # time.monotonic() when the answer was decided (to measure waits between requests)


class _HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        extra: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code
        self.extra, self.headers = extra or {}, headers or {}


class _Fault:
    def __init__(self, n, status, route, method, writes_only, headers, message, body=None, content_type=None):
        self.remaining, self.status, self.route, self.method = n, status, route, method
        self.writes_only, self.headers, self.message = writes_only, headers or {}, message
        self.body, self.content_type = body, content_type
        self.hang: float | None = None  # seconds to wait (hang_next)
        self.after_processing = False

    def matches(self, method: str, route: str, is_write: bool) -> bool:
        if self.remaining <= 0:
            return False
        if self.route is not None and route not in ({self.route} if isinstance(self.route, str) else set(self.route)):
            return False
        if self.method is not None and method != self.method.upper():
            return False
        if self.writes_only and not is_write:
            return False
        return True


class HubServer:
    """Hub-compatible test server. See the module docstring."""

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | Iterable[str] | None = None,
        default_user: str = "test-user",
        host: str = "127.0.0.1",
        port: int = 0,
        storage_dir: str | None = None,
        initial_gitattributes: bool = True,
    ):
        self.default_user = default_user
        self.tokens = tokens  # property setter normalises
        self.host = host
        self.port = port
        self.initial_gitattributes = initial_gitattributes
        self._owns_storage = storage_dir is None
        self.storage_dir = storage_dir or tempfile.mkdtemp(prefix="hub_server_")
        self._lock = threading.RLock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._pending_lfs: set[str] = set()
        self._faults: list[_Fault] = []
        self._release = threading.Event()  # set to end every hang_next wait at once
        self._counter = 0
        self.calls: collections.Counter = collections.Counter()
        self.requests: list[RequestRecord] = []
        self.unhandled: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def tokens(self) -> dict[str, str] | None:
        return self._tokens

    @tokens.setter
    def tokens(self, value) -> None:
        if value is None:
            self._tokens = None
        elif isinstance(value, Mapping):
            self._tokens = dict(value)
        elif isinstance(value, str):
            self._tokens = {value: self.default_user}
        else:
            self._tokens = {t: self.default_user for t in value}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> "HubServer":
        if self._httpd is not None:
            return self
        server = self

        class Handler(_Handler):
            hub = server

        httpd = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]  # keep the port: a restart binds the same one
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"HubServer:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (the port is closed: clients get 'connection refused'). State is kept, so
        ``start()`` again resumes on the same port with the same repos."""
        self._release_hangs()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def cleanup(self) -> None:
        """Stop and delete the storage directory (if this server created it)."""
        self.stop()
        if self._owns_storage:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ test helpers
    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        route: str | Iterable[str] | None = None,
        method: str | None = None,
        writes_only: bool = False,
        headers: dict | None = None,
        message: str = "Injected failure (hub_server.fail_next)",
        body: bytes | str | None = None,
        content_type: str = "text/html",
    ) -> None:
        """Make the next ``n`` requests matching (route name / method / write routes only) answer ``status``:
        a JSON error, or ``body`` as ``content_type`` when given."""
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            fault = _Fault(n, status, route, method, writes_only, headers, message, body, content_type)
            self._faults.append(fault)

    def hang_next(
        self,
        n: int = 1,
        seconds: float = 60.0,
        *,
        route: str | Iterable[str] | None = None,
        method: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Make the next ``n`` matching requests wait ``seconds`` and then go unanswered, or, with
        ``after_processing``, be processed at once and answered ``seconds`` late (see the module docstring)."""
        with self._lock:
            fault = _Fault(n, 0, route, method, False, None, "")
            fault.hang, fault.after_processing = seconds, after_processing
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self._release_hangs()

    def _release_hangs(self) -> None:
        """End the waits of requests hanging now; later hangs wait again."""
        self._release.set()
        self._release = threading.Event()

    def count(self, route: str | None = None, method: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (route is None or r.route == route)
                and (method is None or r.method == method.upper())
                and (status is None or r.status == status)
            )

    def reset_stats(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()
            self.unhandled.clear()

    def reset(self) -> None:
        """Forget all repos, blobs, faults and stats (tokens are kept)."""
        with self._lock:
            self._repos.clear()
            self._pending_lfs.clear()
            self._faults.clear()
            self._release_hangs()
            self.reset_stats()
            for name in os.listdir(self.storage_dir):
                p = os.path.join(self.storage_dir, name)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def is_private(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return self._repos[(repo_type, repo_id)].private

    def list_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        with self._lock:
            commit = self._repos[(repo_type, repo_id)].resolve(revision)
            return sorted(commit.files) if commit else []

    def read_file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        with self._lock:
            entry = self._repos[(repo_type, repo_id)].resolve(revision).files[path]
        return self._read_blob(entry.sha256)

    def repo_dir(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str:
        """Folder where the files of ``revision`` (a branch) are written as plain files."""
        return os.path.join(self.storage_dir, repo_type + "s", *repo_id.split("/"), revision)

    # ------------------------------------------------------------------ storage internals
    def _blob_path(self, sha256: str) -> str:
        return os.path.join(self.storage_dir, "blobs", sha256)

    def _has_blob(self, sha256: str) -> bool:
        return os.path.exists(self._blob_path(sha256))

    def _read_blob(self, sha256: str) -> bytes:
        with open(self._blob_path(sha256), "rb") as f:
            return f.read()

    def _write_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self._blob_path(sha)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return sha

    def _new_commit_oid(self, repo: _Repo, title: str) -> str:
        self._counter += 1
        return hashlib.sha1(
            f"{repo.repo_type}/{repo.repo_id}:{self._counter}:{title}:{time.time()}".encode()
        ).hexdigest()

    def _commit(
        self, repo: _Repo, branch: str, files: dict[str, _Entry], title: str, message: str, author: str
    ) -> _Commit:
        parent = repo.refs.get(branch)
        commit = _Commit(self._new_commit_oid(repo, title), parent, title, message, author, _now_iso(), files)
        repo.commits[commit.oid] = commit
        repo.refs[branch] = commit.oid
        self._materialize(repo, branch)
        return commit

    def _materialize(self, repo: _Repo, branch: str) -> None:
        folder = self.repo_dir(repo.repo_id, branch, repo.repo_type)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)
        for path, entry in repo.commits[repo.refs[branch]].files.items():
            dest = os.path.join(folder, *path.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(self._blob_path(entry.sha256), dest)

    def _entry_for_bytes(self, data: bytes, lfs: bool) -> _Entry:
        sha = self._write_blob(data)
        git_oid = _git_blob_sha1(_lfs_pointer(sha, len(data)) if lfs else data)
        return _Entry(len(data), sha, git_oid, lfs)

    def _lfs_patterns(self, commit: _Commit | None) -> list[str]:
        if commit is None or ".gitattributes" not in commit.files:
            text = DEFAULT_GITATTRIBUTES
        else:
            text = self._read_blob(commit.files[".gitattributes"].sha256).decode("utf-8", "replace")
        patterns = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
                patterns.append(parts[0])
        return patterns

    @staticmethod
    def _matches_lfs(path: str, patterns: list[str]) -> bool:
        base = path.rsplit("/", 1)[-1]
        for pat in patterns:
            if "/" in pat.rstrip("/"):
                if fnmatch.fnmatchcase(path, pat.lstrip("/").replace("**/", "*")):
                    return True
            elif fnmatch.fnmatchcase(base, pat):
                return True
        return False


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: HubServer  # set on the per-server subclass
    protocol_version = "HTTP/1.1"
    server_version = "HubServer/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    # ------------------------------------------------------------------ plumbing
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _read_body(self) -> bytes:
        if getattr(self, "_body", None) is not None:
            return self._body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        self._body = body
        return body

    def _json_body(self) -> Any:
        try:
            return json.loads(self._read_body() or b"null")
        except ValueError:
            raise _HTTPError(400, "Invalid JSON body") from None

    def _hang(self, seconds: float) -> bool:
        """Wait `seconds` (hang_next); False when the wait was ended early by clear_faults / reset / stop."""
        return not self.hub._release.wait(seconds)

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str = "application/json"
    ) -> None:
        self._record(status)
        if self._late is not None and not self._hang(self._late):
            self.close_connection = True  # released: the answer never comes
            return
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", content_type)
        headers.setdefault("Content-Length", str(len(body)))
        headers["Connection"] = "close"
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _record(self, status: int) -> None:
        """Log the request *before* answering, so a client never sees a response that is not counted yet."""
        self._status = status
        if not self._recorded:
            self._recorded = True
            with self.hub._lock:
                self.hub.requests.append(
                    RequestRecord(self.command, self.path, self._route, status, self._user, time.monotonic())
                )

    def _send_json(self, obj: Any, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error(self, err: _HTTPError) -> None:
        headers = dict(err.headers)
        if err.error_code:
            headers["X-Error-Code"] = err.error_code
        headers["X-Error-Message"] = err.message
        self._send_json({"error": err.message, **err.extra}, err.status, headers)

    def _dispatch(self) -> None:
        hub = self.hub
        self._status = 0
        self._recorded = False
        self._route = "unhandled"
        self._body = None
        self._user: str | None = None
        self._late: float | None = None  # seconds the answer waits (hang_next(after_processing=True))
        split = urlsplit(self.path)
        raw_path, self.query = split.path, parse_qs(split.query)
        method = self.command
        route_name, match, is_write = "unhandled", None, False
        for methods, regex, name, write in _ROUTES:
            m = regex.match(raw_path)
            if m and method in methods:
                route_name, match, is_write = name, m, write
                break
        self._route = route_name
        try:
            try:
                with hub._lock:
                    hub.calls[route_name] += 1
                    fault = next((f for f in hub._faults if f.matches(method, route_name, is_write)), None)
                    if fault is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            hub._faults.remove(fault)
                if fault is not None and fault.hang is not None and fault.after_processing:
                    self._late, fault = fault.hang, None
                if fault is not None:
                    self._read_body()  # drain so the client sees the response, not a reset
                    if fault.hang is not None:  # no answer, nothing processed
                        self._hang(fault.hang)
                        self.close_connection = True
                        return
                    if fault.body is not None:
                        self._send(fault.status, fault.body, fault.headers, fault.content_type)
                        return
                    raise _HTTPError(fault.status, fault.message, headers=fault.headers)
                if match is None:
                    with hub._lock:
                        hub.unhandled.append((method, self.path))
                    self._read_body()
                    raise _HTTPError(404, f"hub_server: no route for {method} {raw_path}")
                self._authenticate(route_name, is_write)
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                getattr(self, "_route_" + route_name)(**params)
            except _HTTPError as err:
                self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self._status = self._status or 599
        except Exception as exc:  # a bug in the server: answer 500 with the reason
            if not self._recorded:
                try:
                    self._send_error(_HTTPError(500, f"hub_server internal error: {exc!r}"))
                except OSError:
                    pass
            raise
        finally:
            self._record(self._status)

    # ------------------------------------------------------------------ auth
    def _authenticate(self, route: str, is_write: bool) -> None:
        hub = self.hub
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if hub.tokens is None:
            self._user = hub.default_user
            return
        if route == "lfs_upload":  # pre-signed URL, no auth
            return
        if token is not None:
            if token not in hub.tokens:
                raise _HTTPError(401, "Invalid credentials in Authorization header")
            self._user = hub.tokens[token]
        elif is_write or route == "whoami":
            raise _HTTPError(401, "Invalid username or password.")

    def _get_repo(self, rtype: str | None, repo: str, *, write: bool = False) -> _Repo:
        repo_type = _REPO_TYPES.get(rtype or "models", "model")
        r = self.hub._repos.get((repo_type, repo))
        visible = r is not None and (not r.private or self._user is not None)
        if not visible:
            raise _HTTPError(404, "Repository not found", "RepoNotFound")
        return r

    def _get_commit(self, repo: _Repo, rev: str, *, headers: dict | None = None) -> _Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise _HTTPError(404, f"Invalid rev id: {rev}", "RevisionNotFound", headers=headers)
        return commit

    # ------------------------------------------------------------------ routes
    def _route_whoami(self) -> None:
        name = self._user or self.hub.default_user
        self._send_json(
            {
                "type": "user",
                "id": hashlib.md5(name.encode()).hexdigest()[:24],
                "name": name,
                "fullname": name,
                "email": f"{name}@example.com",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "periodEnd": None,
                "avatarUrl": "",
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "hub_server", "role": "write", "createdAt": _now_iso()},
                },
            }
        )

    def _route_agent_harnesses(self) -> None:
        # huggingface_hub fetches this registry (user-agent "agent" detection) once a day per HF_HOME.
        self._send_json({"standardEnvVars": [], "harnesses": {}})

    def _route_validate_yaml(self) -> None:
        body = self._json_body() or {}
        content = body.get("content")
        if not isinstance(content, str):
            raise _HTTPError(400, "Missing 'content'", extra={"errors": [{"message": "Missing 'content'"}]})
        errors = []
        lines = content.splitlines()
        if lines and lines[0].strip() == "---" and not any(line.strip() == "---" for line in lines[1:]):
            errors.append({"message": "Unterminated YAML front matter"})
        if errors:
            raise _HTTPError(400, "Invalid metadata", extra={"errors": errors, "warnings": []})
        self._send_json({"errors": [], "warnings": []})

    def _route_create_repo(self) -> None:
        hub = self.hub
        body = self._json_body() or {}
        name = body.get("name")
        if not name:
            raise _HTTPError(400, "Missing repo name")
        namespace = body.get("organization") or self._user or hub.default_user
        repo_type = body.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise _HTTPError(400, f"Invalid repo type {repo_type}")
        repo_id = f"{namespace}/{name}"
        url = f"{hub.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        with hub._lock:
            if (repo_type, repo_id) in hub._repos:
                raise _HTTPError(409, f"You already created this {repo_type} repo", extra={"url": url})
            private = body.get("visibility") == "private" or bool(body.get("private"))
            repo = _Repo(repo_type, repo_id, private, _now_iso(), {}, {})
            files = {}
            if hub.initial_gitattributes:
                files[".gitattributes"] = hub._entry_for_bytes(DEFAULT_GITATTRIBUTES.encode(), lfs=False)
            hub._commit(repo, "main", files, "initial commit", "", self._user or hub.default_user)
            hub._repos[(repo_type, repo_id)] = repo
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _route_delete_repo(self) -> None:
        hub = self.hub
        body = self._json_body() or {}
        namespace = body.get("organization") or self._user or hub.default_user
        key = (body.get("type") or "model", f"{namespace}/{body.get('name')}")
        with hub._lock:
            if key not in hub._repos:
                raise _HTTPError(404, "Repository not found", "RepoNotFound")
            del hub._repos[key]
            shutil.rmtree(os.path.join(hub.storage_dir, key[0] + "s", *key[1].split("/")), ignore_errors=True)
        self._send_json({})

    def _route_settings(self, rtype: str, repo: str) -> None:
        body = self._json_body() or {}
        with self.hub._lock:
            r = self._get_repo(rtype, repo, write=True)
            if "private" in body and body["private"] is not None:
                r.private = bool(body["private"])
            if body.get("visibility") in ("private", "public"):
                r.private = body["visibility"] == "private"
        self._send_json({})

    def _repo_info_json(self, r: _Repo, commit: _Commit, blobs: bool) -> dict:
        siblings = []
        for path in sorted(commit.files):
            e = commit.files[path]
            s: dict[str, Any] = {"rfilename": path}
            if blobs:
                s.update(size=e.size, blobId=e.git_oid)
                if e.lfs:
                    s["lfs"] = {"size": e.size, "sha256": e.sha256, "pointerSize": LFS_POINTER_SIZE}
            siblings.append(s)
        info = {
            "_id": hashlib.md5(r.repo_id.encode()).hexdigest()[:24],
            "id": r.repo_id,
            "author": r.author,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": r.created_at,
            "private": r.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.files.values()),
        }
        if r.repo_type == "model":
            info["modelId"] = r.repo_id
        if r.repo_type == "space":
            info["sdk"] = "static"
        return info

    def _route_repo_info(self, rtype: str, repo: str, rev: str = "main") -> None:
        with self.hub._lock:
            r = self._get_repo(rtype, repo)
            commit = self._get_commit(r, rev)
            blobs = self.query.get("blobs", ["false"])[0].lower() in ("1", "true")
            self._send_json(self._repo_info_json(r, commit, blobs))

    def _route_refs(self, rtype: str, repo: str) -> None:
        with self.hub._lock:
            r = self._get_repo(rtype, repo)
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in r.refs.items()]
        self._send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _route_commits(self, rtype: str, repo: str, rev: str) -> None:
        with self.hub._lock:
            r = self._get_repo(rtype, repo)
            history = r.history(self._get_commit(r, rev))
        self._send_json(
            [
                {"id": c.oid, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date}
                for c in history
            ]
        )

    def _tree_items(self, commit: _Commit, prefix: str, recursive: bool, expand: bool) -> list[dict]:
        prefix = prefix.strip("/")
        files = commit.files
        if prefix and prefix in files:
            raise _HTTPError(400, f"{prefix} is a file, not a folder")
        under = {p: e for p, e in files.items() if not prefix or p.startswith(prefix + "/")}
        if prefix and not under:
            raise _HTTPError(404, f"{prefix} does not exist on {commit.oid}", "EntryNotFound")
        items: dict[str, dict] = {}
        for path, entry in sorted(under.items()):
            rel = path[len(prefix) + 1 :] if prefix else path
            parts = rel.split("/")
            for i in range(1, len(parts)):  # parent directories
                d = "/".join(([prefix] if prefix else []) + parts[:i])
                if recursive or i == 1:
                    items.setdefault(
                        d, {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                    )
            if recursive or len(parts) == 1:
                items[path] = entry.tree_json(path)
        out = [items[k] for k in sorted(items)]
        if expand:
            for item in out:
                item["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
        return out

    def _route_tree(self, rtype: str, repo: str, rev: str, path: str = "") -> None:
        with self.hub._lock:
            r = self._get_repo(rtype, repo)
            commit = self._get_commit(r, rev)
            recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
            expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
            items = self._tree_items(commit, path, recursive, expand)
        self._send_json(items)

    def _route_paths_info(self, rtype: str, repo: str, rev: str) -> None:
        raw = self._read_body().decode()
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            body = json.loads(raw or "{}")
            paths, expand = body.get("paths", []), bool(body.get("expand"))
        else:
            form = parse_qs(raw)
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        with self.hub._lock:
            r = self._get_repo(rtype, repo)
            commit = self._get_commit(r, rev)
            out = []
            for p in paths:
                p = p.strip("/")
                if p in commit.files:
                    item = commit.files[p].tree_json(p)
                elif any(f.startswith(p + "/") for f in commit.files):
                    item = {"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p}
                else:
                    continue
                if expand:
                    item["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
                out.append(item)
        self._send_json(out)

    def _route_preupload(self, rtype: str, repo: str, rev: str) -> None:
        body = self._json_body() or {}
        if not isinstance(body.get("files"), list):
            raise _HTTPError(400, "Missing 'files'")
        hub = self.hub
        with hub._lock:
            r = self._get_repo(rtype, repo, write=True)
            commit = r.resolve(rev)
            if commit is None and "create_pr" not in self.query:
                raise _HTTPError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            patterns = hub._lfs_patterns(commit)
            out = []
            for f in body["files"]:
                path, size = f.get("path"), int(f.get("size") or 0)
                try:
                    sample = base64.b64decode(f.get("sample") or "")
                except ValueError:
                    raise _HTTPError(400, f"Invalid sample for {path}") from None
                lfs = hub._matches_lfs(path, patterns) or size >= LFS_SIZE_THRESHOLD or b"\0" in sample
                existing = commit.files.get(path) if commit else None
                remote_oid = None
                if existing is not None:
                    remote_oid = existing.sha256 if existing.lfs else existing.git_oid
                out.append(
                    {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": remote_oid}
                )
        self._send_json({"files": out, "commitOid": commit.oid if commit else None})

    def _route_lfs_batch(self, repo: str, rtype: str | None = None) -> None:
        body = self._json_body() or {}
        if body.get("operation") != "upload":
            raise _HTTPError(400, "hub_server only supports LFS 'upload' batches")
        hub = self.hub
        with hub._lock:
            self._get_repo(rtype, repo, write=True)
            objects = []
            for obj in body.get("objects", []):
                oid, size = obj.get("oid"), obj.get("size")
                if not isinstance(oid, str) or not re.fullmatch(r"[0-9a-f]{64}", oid):
                    objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid"}})
                elif hub._has_blob(oid):
                    objects.append({"oid": oid, "size": size})  # already uploaded: no action
                else:
                    hub._pending_lfs.add(oid)
                    objects.append(
                        {
                            "oid": oid,
                            "size": size,
                            "authenticated": True,
                            "actions": {
                                "upload": {"href": f"{hub.url}/lfs-upload/{oid}", "header": {}, "expires_in": 3600}
                            },
                        }
                    )
        self._send_json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _route_lfs_upload(self, oid: str) -> None:
        hub = self.hub
        data = self._read_body()
        with hub._lock:
            if oid not in hub._pending_lfs and not hub._has_blob(oid):
                raise _HTTPError(403, f"Upload of {oid} was not requested through the LFS batch API")
        if hashlib.sha256(data).hexdigest() != oid:
            raise _HTTPError(400, f"sha256 mismatch for LFS object {oid} ({len(data)} bytes received)")
        with hub._lock:
            hub._write_blob(data)
            hub._pending_lfs.discard(oid)
        self._send(200, b"", content_type="text/plain")

    def _route_commit(self, rtype: str, repo: str, rev: str) -> None:
        hub = self.hub
        if "create_pr" in self.query:
            raise _HTTPError(501, "hub_server does not support create_pr")
        lines = [line for line in self._read_body().splitlines() if line.strip()]
        try:
            items = [json.loads(line) for line in lines]
        except ValueError:
            raise _HTTPError(400, "Invalid NDJSON payload") from None
        if not items or items[0].get("key") != "header":
            raise _HTTPError(400, "First NDJSON line must be the commit header")
        header = items[0].get("value") or {}
        with hub._lock:
            r = self._get_repo(rtype, repo, write=True)
            head = self._get_commit(r, rev)
            if rev not in r.refs and not rev.startswith("refs/heads/"):
                raise _HTTPError(400, f"Can only commit to a branch, not to {rev}")
            branch = rev[len("refs/heads/") :] if rev.startswith("refs/heads/") else rev
            parent = header.get("parentCommit")
            if parent and parent != head.oid:
                raise _HTTPError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for item in items[1:]:
                key, value = item.get("key"), item.get("value") or {}
                path = (value.get("path") or "").strip("/")
                if not path and key != "deletedFolder":
                    raise _HTTPError(400, f"Missing path in {key} operation")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise _HTTPError(400, f"Unsupported encoding {value.get('encoding')}")
                    files[path] = hub._entry_for_bytes(base64.b64decode(value.get("content") or ""), lfs=False)
                elif key == "lfsFile":
                    oid = value.get("oid")
                    if not oid or not hub._has_blob(oid):
                        raise _HTTPError(
                            422,
                            f"Your push was rejected because an LFS pointer pointed to a file "
                            f"that does not exist ({path}: {oid})",
                        )
                    size = os.path.getsize(hub._blob_path(oid))
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise _HTTPError(422, f"LFS object size mismatch for {path}")
                    files[path] = _Entry(size, oid, _git_blob_sha1(_lfs_pointer(oid, size)), True)
                elif key == "deletedFile":
                    if path not in files:
                        raise _HTTPError(404, f"File {path} does not exist", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    doomed = [p for p in files if not path or p.startswith(path + "/")]
                    if not doomed:
                        raise _HTTPError(404, f"Folder {path} does not exist", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise _HTTPError(400, f"Unknown commit operation {key!r}")
            commit = hub._commit(
                r,
                branch,
                files,
                header.get("summary") or "Commit",
                header.get("description") or "",
                self._user or hub.default_user,
            )
            commit_url = f"{hub.url}/{_URL_PREFIX[r.repo_type]}{r.repo_id}/commit/{commit.oid}"
        self._send_json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": commit_url,
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _route_resolve(self, repo: str, rev: str, path: str, rtype: str | None = None) -> None:
        hub = self.hub
        with hub._lock:
            r = self._get_repo(rtype, repo)
            commit = self._get_commit(r, rev)
            entry = commit.files.get(path)
            if entry is None:
                raise _HTTPError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
            blob_path = hub._blob_path(entry.sha256)
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{entry.sha256 if entry.lfs else entry.git_oid}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        start, end, status = 0, entry.size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if not m or (not m.group(1) and not m.group(2)):
                raise _HTTPError(416, f"Invalid range {rng}", headers={"Content-Range": f"bytes */{entry.size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), entry.size - 1) if m.group(2) else entry.size - 1
            else:  # suffix range
                start = max(entry.size - int(m.group(2)), 0)
            if start >= entry.size and entry.size > 0:
                raise _HTTPError(
                    416, f"Range {rng} not satisfiable", headers={"Content-Range": f"bytes */{entry.size}"}
                )
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        length = max(end - start + 1, 0)
        headers["Content-Length"] = str(length)
        self._record(status)
        self.send_response(status)
        headers["Content-Type"] = "application/octet-stream"
        headers["Connection"] = "close"
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        with open(blob_path, "rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                chunk = f.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
