"""Reliability of `python -m hf_transfer push` / `push_output_dir` against a Hub that misbehaves (issue 25): the
deadline, rate limits, answers that are not the Hub's, Ctrl-C and a full temporary directory.

Timing assertions are generous bounds derived from the deadline (the machine may be loaded), never tight ones.
"""

import contextlib
import errno
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from email.utils import formatdate

import pytest

from hf_transfer.errors import ConfigError
from hf_transfer.hub import HubPushError, push_output_dir
from recipe_runner import ROOT


@pytest.fixture
def output(tmp_path):
    """A finished output directory as far as a push can tell: a config, one LFS weight file, one regular file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "a", "1": "b"}}))
    (out / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (out / "all_results.json").write_text(json.dumps({"eval_accuracy": 0.5}))
    return out


def _push_command(out, repo: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "hf_transfer", "push", str(out), "--repo_id", repo, *flags]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@contextlib.contextmanager
def _push_process(out, repo: str, *flags: str):
    """`python -m hf_transfer push` running in the background, killed if the test leaves it running."""
    proc = subprocess.Popen(
        _push_command(out, repo, *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait_for_the_commit(proc, hub_server) -> float:
    """When the server got the push's commit request (timings start there, not at the interpreter's start-up)."""
    start = time.monotonic()
    while hub_server.calls["commit"] == 0:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() - start < 120, "the push never reached the commit"
        time.sleep(0.05)
    return time.monotonic()


def test_a_non_positive_deadline_is_refused_before_anything_is_sent(output, hub_server):
    """A negative --deadline used to report failure while the push went on and the commit landed."""
    proc = subprocess.run(
        _push_command(output, "test-user/negative", "--deadline", "-1"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1 and "--deadline" in errors[0] and "positive" in errors[0], proc.stderr
    assert "--hub_deadline" not in proc.stderr
    assert hub_server.count() == 0 and not hub_server.repo_exists("test-user/negative")
    with pytest.raises(ConfigError, match="--hub_deadline"):
        push_output_dir(output, "test-user/negative", deadline=0)
    assert hub_server.count() == 0


def test_the_deadline_ends_the_process_while_the_hub_hangs(output, hub_server):
    """With --timeout 400 --deadline 2 and a commit that never gets an answer, the process used to live on until the
    request timeout: every request now waits at most the time left to the deadline."""
    hub_server.hang_next(1, 60, route="commit")
    with _push_process(output, "test-user/hang", "--timeout", "400", "--deadline", "2") as proc:
        committing = _wait_for_the_commit(proc, hub_server)
        try:
            _, stderr = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            pytest.fail("the push outlived its --deadline 2 by more than 40 s")
        assert time.monotonic() - committing < 15  # under 2 s of deadline, plus the commit check and the exit
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    errors = _error_lines(stderr)
    assert len(errors) == 1 and "did not finish within 2 s (--deadline)" in errors[0], stderr
    assert "had not landed when checked" in errors[0] and f"python -m hf_transfer push {output}" in errors[0]
    assert hub_server.calls["commit"] == 1
    assert hub_server.list_files("test-user/hang") == [".gitattributes"]


def test_a_commit_that_landed_is_never_reported_as_failed(output, hub_server):
    """The commit lands at once but its answer comes after the deadline: the push checks, and succeeds."""
    hub_server.hang_next(1, 60, route="commit", after_processing=True)
    start = time.monotonic()
    url = push_output_dir(output, "test-user/late-answer", request_timeout=400, deadline=3)
    assert time.monotonic() - start < 15
    assert "model.safetensors" in hub_server.list_files("test-user/late-answer")
    head = hub_server._repos[("model", "test-user/late-answer")].refs["main"]
    assert url.endswith(head)


def test_a_commit_that_cannot_be_checked_is_reported_as_unknown_not_as_failed(output, hub_server):
    """The commit lands, its answer never comes and the Hub stops answering the check too: the one line says the
    push may have failed and where to look, within the deadline and a few seconds of grace."""
    hub_server.hang_next(1, 60, route="commit", after_processing=True)

    def hang_the_check():  # the head is read once before the commit: only what comes after it hangs
        while hub_server.calls["commit"] == 0:
            time.sleep(0.02)
        hub_server.hang_next(5, 60, route="repo_info")

    threading.Thread(target=hang_the_check, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(HubPushError, match="may have failed: POST /api/models/.*/commit/main got no answer") as err:
        push_output_dir(output, "test-user/unknown", request_timeout=400, deadline=2)
    assert time.monotonic() - start < 20
    assert f"{hub_server.url}/test-user/unknown/commits/main" in str(err.value)
    assert "model.safetensors" in hub_server.list_files("test-user/unknown")


def test_a_hang_before_the_commit_is_bounded_by_the_deadline(output, hub_server):
    hub_server.hang_next(1, 60, route="preupload")
    start = time.monotonic()
    with pytest.raises(HubPushError, match="did not finish within 2 s .*nothing was committed") as err:
        push_output_dir(output, "test-user/slow-preupload", request_timeout=400, deadline=2)
    assert time.monotonic() - start < 15
    assert "\n" not in str(err.value) and hub_server.calls["commit"] == 0
    # nothing of the push goes on in the background (a worker thread used to wait out the request timeout)
    assert [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()] == []


def test_ctrl_c_stops_a_push_promptly(output, hub_server):
    """SIGINT while the commit waits for an answer: the process ends at once, with one line and the retry hint."""
    hub_server.hang_next(1, 60, route="commit")
    with _push_process(output, "test-user/interrupted", "--timeout", "400") as proc:
        _wait_for_the_commit(proc, hub_server)
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        try:
            _, stderr = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl-C did not stop the push within 40 s")
        assert time.monotonic() - interrupted < 15
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    errors = _error_lines(stderr)
    assert len(errors) == 1 and "interrupted" in errors[0] and f"python -m hf_transfer push {output}" in errors[0]
    assert "/commits/main to see whether it landed" in errors[0]


def test_an_html_answer_names_the_endpoint_and_the_proxy(output, hub_server):
    """A proxy's login page instead of the Hub's JSON used to end in a JSONDecodeError traceback."""
    hub_server.fail_next(1, 200, route="create_repo", body="<html><body>Please log in to the proxy</body></html>")
    with pytest.raises(HubPushError) as err:
        push_output_dir(output, "test-user/proxied")
    message = str(err.value)
    assert "not JSON" in message and "proxy" in message and hub_server.url in message and "HF_ENDPOINT" in message
    assert "\n" not in message and "push it later" in message


def test_an_answer_that_is_not_json_is_one_line_too(output, hub_server):
    hub_server.fail_next(1, 200, route="create_repo", body="Service temporarily moved", content_type="text/plain")
    with pytest.raises(HubPushError, match="not JSON.*HF_ENDPOINT"):
        push_output_dir(output, "test-user/plain")


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_of_a_429_is_honoured(output, hub_server, form):
    wait = 3
    value = str(wait) if form == "seconds" else formatdate(time.time() + wait + 1, usegmt=True)
    hub_server.fail_next(1, 429, route="commit", headers={"Retry-After": value})
    push_output_dir(output, "test-user/rate-limited", max_retries=2)
    assert "model.safetensors" in hub_server.list_files("test-user/rate-limited")
    commits = [r for r in hub_server.requests if r.route == "commit"]
    assert [r.status for r in commits] == [429, 200]
    assert commits[1].at - commits[0].at >= wait - 0.5  # the back-off alone would have waited 1 s


def test_a_retry_after_beyond_the_deadline_stops_at_once(output, hub_server):
    hub_server.fail_next(1, 429, route="create_repo", headers={"Retry-After": "120"})
    start = time.monotonic()
    with pytest.raises(HubPushError, match="asks to wait 120 s \\(Retry-After\\).*left of --hub_deadline 10") as err:
        push_output_dir(output, "test-user/too-long", deadline=10)
    assert time.monotonic() - start < 8
    assert "\n" not in str(err.value) and hub_server.count("create_repo") == 1


def test_a_full_temporary_directory_is_named_not_the_network(output, hub_server, monkeypatch, tmp_path):
    """ENOSPC while staging used to read 'the Hub could not be reached'."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR

    def disk_full(src, dst, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(shutil, "copy2", disk_full)
    with pytest.raises(HubPushError) as err:
        push_output_dir(output, "test-user/full-disk")
    message = str(err.value)
    assert "could not be reached" not in message and "No space left" in message
    assert str(tmp_path) in message and "TMPDIR" in message and "free space" in message.lower()
    assert hub_server.count() == 0  # staged before anything is sent: no empty repository is left behind
