import os
import sys

import pytest

# --- Local Hub server (tests/hub_server.py; see its docstring) -------------------------------------------
# huggingface_hub reads HF_ENDPOINT / HF_HUB_DISABLE_XET at import time (and its module-level `api` and
# transformers' shared HfApi copy the endpoint), so they are fixed here, before any test module imports it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_server import HubServer, find_free_port  # noqa: E402
from tiny_models import make_tiny, make_tiny_bert, make_tiny_vit  # noqa: E402

HUB_TEST_TOKEN = "hf_hubserver_test_token"
HUB_TEST_USER = "test-user"
HUB_PORT = find_free_port()
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_ENDPOINT"] = HUB_URL
os.environ["HF_HUB_DISABLE_XET"] = "1"
if "huggingface_hub" in sys.modules:  # imported early (e.g. by a plugin): patch its configuration too
    from huggingface_hub import constants as _hf_constants
    from huggingface_hub import hf_api as _hf_api

    _hf_constants.ENDPOINT = HUB_URL
    _hf_constants.HUGGINGFACE_CO_URL_TEMPLATE = HUB_URL + "/{repo_id}/resolve/{revision}/{filename}"
    _hf_constants.HF_HUB_DISABLE_XET = True
    _hf_api.api.endpoint = HUB_URL

_HUB: HubServer | None = None


@pytest.fixture
def hub_online(tmp_path, monkeypatch):
    """Online mode for one test, whatever the caller exported (`make test` sets HF_HUB_OFFLINE=1): a fresh
    temp HF_HOME/HF_HUB_CACHE, $HF_ENDPOINT pointing at the test server's port, no stray tokens. The env
    is inherited by subprocesses; huggingface_hub's import-time constants are patched to match."""
    from huggingface_hub import constants

    hf_home = tmp_path / "hf_home"
    cache = hf_home / "hub"
    env = {
        "HF_ENDPOINT": HUB_URL,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    for name, value in {
        "ENDPOINT": HUB_URL,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
    }.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    yield


@pytest.fixture
def hub_server(hub_online, monkeypatch):
    """A started, empty `HubServer` at $HF_ENDPOINT (fixed port for the session), with HF_TOKEN (its valid
    token) and offline mode off (`hub_online`). Stopped again after the test."""
    global _HUB

    if _HUB is None:
        _HUB = HubServer(tokens={HUB_TEST_TOKEN: HUB_TEST_USER}, default_user=HUB_TEST_USER, port=HUB_PORT)
    _HUB.tokens = {HUB_TEST_TOKEN: HUB_TEST_USER}
    _HUB.reset()
    _HUB.start()
    monkeypatch.setenv("HF_TOKEN", HUB_TEST_TOKEN)
    yield _HUB
    _HUB.clear_faults()
    _HUB.stop()  # outside hub_server tests, $HF_ENDPOINT refuses connections (same as no network)


# --- Tiny random models (tests/tiny_models.py), built once per test module ---------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`tiny(name)`: the tiny checkpoint of architecture `name` (`tiny_models.TINY_ARCHITECTURES`), built once per
    test module."""
    built = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = make_tiny(name, tmp_path_factory.mktemp(name))
        return built[name]

    return get


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE / HF_DATASETS_OFFLINE for one test, whatever the caller exported."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for modules of tiny in-process networks: faster, and far faster on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """A real-model integration check is one of the slow ones (`make test-slow`, CI's second stage)."""
    for item in items:
        if item.get_closest_marker("integration") is not None:
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config):
    if _HUB is not None:
        _HUB.cleanup()
