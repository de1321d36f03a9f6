"""The local Hub server (tests/hub_server.py) driven by the real huggingface_hub / transformers / peft clients."""

import hashlib
import os
import subprocess
import sys
import time

import httpx2
import pytest
import torch
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from safetensors.torch import save_file

from hub_server import HubServer

README = """---
license: apache-2.0
tags:
- test
---
# Tiny

A test card.
"""


def _make_folder(path):
    path.mkdir()
    (path / "README.md").write_text(README)
    (path / "config.json").write_text('{"a": 1, "b": [1, 2, 3]}\n')
    save_file({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, str(path / "model.safetensors"))
    (path / "sub").mkdir()
    (path / "sub" / "notes.txt").write_text("nested\n")
    return path


def _tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=100, num_labels=3
    )
    return BertForSequenceClassification(config).eval()


INPUTS = {"input_ids": torch.tensor([[1, 5, 9, 42, 2]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}


def test_env_points_at_server(hub_server):
    assert constants.ENDPOINT == hub_server.url == os.environ["HF_ENDPOINT"]
    assert constants.HF_HUB_DISABLE_XET
    import huggingface_hub

    assert huggingface_hub.hf_api.api.endpoint == hub_server.url  # module-level helpers too
    assert HfApi().whoami()["name"] == "test-user"


def test_create_repo_and_exist_ok(hub_server):
    api = HfApi()
    url = api.create_repo("test-user/tiny")
    assert url.repo_id == "test-user/tiny"
    assert api.create_repo("test-user/tiny", exist_ok=True).repo_id == "test-user/tiny"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("test-user/tiny", exist_ok=False)
    assert exc.value.response.status_code == 409
    # without a namespace, the token's user is used
    assert api.create_repo("solo").repo_id == "test-user/solo"
    assert hub_server.count("create_repo") == 4


def test_upload_folder_roundtrip(hub_server, tmp_path):
    folder = _make_folder(tmp_path / "src")
    api = HfApi()
    api.create_repo("test-user/folder", private=True)
    info = api.upload_folder(repo_id="test-user/folder", folder_path=folder, commit_message="add files")
    assert info.oid and info.commit_url.startswith(hub_server.url)

    files = api.list_repo_files("test-user/folder")
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors", "sub/notes.txt"]
    assert hub_server.count("validate_yaml") == 2  # upload_folder validates README.md twice
    assert hub_server.count("lfs_upload") == 1  # only the .safetensors went through LFS
    assert hub_server.count("lfs_batch") == 1

    mi = api.model_info("test-user/folder", files_metadata=True)
    assert mi.private is True and mi.sha == info.oid
    sib = {s.rfilename: s for s in mi.siblings}
    assert sib["model.safetensors"].lfs is not None and sib["config.json"].lfs is None

    for rel in ["README.md", "config.json", "model.safetensors", "sub/notes.txt"]:
        local = hf_hub_download("test-user/folder", rel)
        assert open(local, "rb").read() == (folder / rel).read_bytes(), rel

    snap = snapshot_download("test-user/folder")
    for rel in ["README.md", "config.json", "model.safetensors", "sub/notes.txt"]:
        assert open(os.path.join(snap, rel), "rb").read() == (folder / rel).read_bytes()
    # the server keeps plain files per branch
    assert (tmp_path / "src" / "config.json").read_bytes() == open(
        os.path.join(hub_server.repo_dir("test-user/folder"), "config.json"), "rb"
    ).read()

    # a second identical upload sends no LFS bytes again; a missing file is EntryNotFound
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="config.json", repo_id="test-user/folder")
    assert hub_server.read_file("test-user/folder", "config.json") == b"v2"
    assert (
        hub_server.read_file("test-user/folder", "config.json", revision=info.oid)
        == (folder / "config.json").read_bytes()
    )
    from huggingface_hub.errors import EntryNotFoundError

    with pytest.raises(EntryNotFoundError):
        hf_hub_download("test-user/folder", "nope.txt")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-user/missing", "config.json")


def test_private_repo_needs_token(hub_server):
    api = HfApi()
    api.create_repo("test-user/secret", private=True)
    assert api.model_info("test-user/secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("test-user/secret", token=False)
    api.update_repo_settings("test-user/secret", private=False)
    assert api.model_info("test-user/secret", token=False).private is False


def test_transformers_push_and_from_pretrained(hub_server):
    from transformers import AutoModelForSequenceClassification

    model = _tiny_bert()
    model.push_to_hub("test-user/tiny-bert")
    assert hub_server.count("commit") == 1
    assert "model.safetensors" in hub_server.list_files("test-user/tiny-bert")

    loaded = AutoModelForSequenceClassification.from_pretrained("test-user/tiny-bert").eval()
    with torch.no_grad():
        # Same weights; CPU kernels may round the last bit differently between two model objects.
        torch.testing.assert_close(model(**INPUTS).logits, loaded(**INPUTS).logits, rtol=0, atol=1e-6)
    assert not hub_server.unhandled


def test_peft_push_and_from_pretrained(hub_server):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = _tiny_bert()
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
    )
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(**INPUTS).logits
    peft_model.push_to_hub("test-user/tiny-lora")
    files = hub_server.list_files("test-user/tiny-lora")
    assert "adapter_config.json" in files and "adapter_model.safetensors" in files

    loaded = PeftModel.from_pretrained(_tiny_bert(), "test-user/tiny-lora").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(**INPUTS).logits, expected)
    assert not hub_server.unhandled


def test_trainer_push_to_hub(hub_server, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    ds = Dataset.from_dict({"input_ids": [[1, 2, 3, 4]] * 4, "attention_mask": [[1] * 4] * 4, "labels": [0, 1] * 2})
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=4,
        push_to_hub=True,
        hub_model_id="test-user/trainer-model",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=_tiny_bert(), args=args, train_dataset=ds)
    trainer.train()
    commit = trainer.push_to_hub()
    assert str(commit).startswith(hub_server.url)
    assert {"README.md", "config.json", "model.safetensors"} <= set(hub_server.list_files("test-user/trainer-model"))
    loaded = AutoModelForSequenceClassification.from_pretrained("test-user/trainer-model").eval()
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(trainer.model(**INPUTS).logits, loaded(**INPUTS).logits, rtol=0, atol=1e-6)
    assert not hub_server.unhandled


def test_wrong_token_is_401(hub_server):
    api = HfApi(token="hf_wrong")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("test-user/x")
    assert exc.value.response.status_code == 401
    assert not isinstance(exc.value, RepositoryNotFoundError)
    with pytest.raises(HfHubHTTPError) as exc:
        api.whoami()
    assert exc.value.response.status_code == 401
    # no token at all on a write route: the Hub's 401, which huggingface_hub maps to RepositoryNotFoundError
    HfApi().create_repo("test-user/x")
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(token=False).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="test-user/x")
    assert exc.value.response.status_code == 401
    assert hub_server.list_files("test-user/x") == [".gitattributes"]


def test_500_on_plain_calls_raises_without_retry(hub_server):
    api = HfApi()
    hub_server.fail_next(1, status=500)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("test-user/r")
    assert exc.value.response.status_code == 500
    assert hub_server.count("create_repo") == 1
    api.create_repo("test-user/r")

    hub_server.fail_next(1, status=500, route="repo_info")
    with pytest.raises(HfHubHTTPError):
        api.model_info("test-user/r")
    assert hub_server.count("repo_info") == 1

    # create_commit's commit POST is not retried either
    hub_server.fail_next(1, status=500, route="commit")
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="test-user/r")
    assert exc.value.response.status_code == 500
    assert hub_server.count("commit") == 1
    assert "a.txt" not in hub_server.list_files("test-user/r")


def test_500_on_preupload_and_lfs_is_retried(hub_server):
    api = HfApi()
    api.create_repo("test-user/r")
    hub_server.fail_next(1, status=500, route="preupload")
    hub_server.fail_next(1, status=503, route="lfs_upload")
    t0 = time.monotonic()
    api.upload_file(path_or_fileobj=b"\0binary" * 10, path_in_repo="w.bin", repo_id="test-user/r")
    elapsed = time.monotonic() - t0
    assert hub_server.count("preupload") == 2 and hub_server.count("preupload", status=500) == 1
    assert hub_server.count("lfs_upload") == 2 and hub_server.count("lfs_upload", status=503) == 1
    assert hub_server.read_file("test-user/r", "w.bin") == b"\0binary" * 10
    assert elapsed >= 2  # two 1 s back-off sleeps happened (no upper bound: machines are noisy)


def test_hf_hub_download_retries_head_after_500(hub_server):
    api = HfApi()
    api.create_repo("test-user/r")
    api.upload_file(path_or_fileobj=b"data", path_in_repo="f.txt", repo_id="test-user/r")
    hub_server.fail_next(1, status=500, route="resolve")
    # nothing cached: hf_hub_download re-runs the HEAD with back-off (retry_on_errors=True)
    assert open(hf_hub_download("test-user/r", "f.txt"), "rb").read() == b"data"
    assert hub_server.count("resolve", method="HEAD", status=500) == 1
    assert hub_server.count("resolve", method="HEAD", status=200) == 1
    assert hub_server.count("resolve", method="GET", status=200) == 1


def test_server_not_listening_raises_connection_error(hub_online):
    with HubServer() as srv:
        api = HfApi(endpoint=srv.url, token="anything")
        api.create_repo("u/r")
        srv.stop()
        # Neither call is retried by huggingface_hub: the connection error surfaces at once.
        with pytest.raises(httpx2.ConnectError):
            api.create_repo("u/r2")
        with pytest.raises(httpx2.ConnectError):
            api.model_info("u/r")
        srv.start()  # same port, same state
        assert api.model_info("u/r").id == "u/r"


def test_subprocess_sees_the_server(hub_server):
    HfApi().create_repo("test-user/sub")
    code = (
        "from huggingface_hub import HfApi, constants\n"
        "import os\n"
        "assert constants.ENDPOINT == os.environ['HF_ENDPOINT']\n"
        "api = HfApi()\n"
        "api.upload_file(path_or_fileobj=b'from child', path_in_repo='child.txt', repo_id='test-user/sub')\n"
        "print(api.whoami()['name'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "test-user"
    assert hub_server.read_file("test-user/sub", "child.txt") == b"from child"


def test_fault_counters_and_hash_check(hub_server):
    import urllib.error
    import urllib.request

    api = HfApi()
    api.create_repo("test-user/r")
    # an LFS PUT whose content does not match its oid is refused
    oid = hashlib.sha256(b"good").hexdigest()
    hub_server._pending_lfs.add(oid)
    req = urllib.request.Request(f"{hub_server.url}/lfs-upload/{oid}", data=b"bad", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400
    hub_server.fail_next(2, status=502, writes_only=True)
    assert api.model_info("test-user/r").id == "test-user/r"  # reads are not affected
    assert hub_server.calls["repo_info"] == 1
    assert not hub_server.unhandled


def test_raw_answers_and_hangs(hub_server):
    """fail_next(body=...) answers a page that is not JSON; hang_next holds a request, before or after processing,
    until its time is up or clear_faults() / reset() / stop() release it."""
    hub_server.fail_next(1, 200, route="whoami", body="<html>proxy</html>")
    page = httpx2.get(f"{hub_server.url}/api/whoami-v2", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html" and page.text == "<html>proxy</html>"
    auth = {"Authorization": f"Bearer {os.environ['HF_TOKEN']}"}
    hub_server.hang_next(1, 60, route="create_repo")
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(f"{hub_server.url}/api/repos/create", json={"name": "hung"}, headers=auth, timeout=0.5)
    assert not hub_server.repo_exists("test-user/hung")  # nothing processed
    hub_server.hang_next(1, 60, route="create_repo", after_processing=True)
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(f"{hub_server.url}/api/repos/create", json={"name": "late"}, headers=auth, timeout=0.5)
    assert hub_server.repo_exists("test-user/late")  # processed, only the answer is late
    hub_server.clear_faults()  # ends the waits of both hung requests: their handlers are done
    assert httpx2.get(f"{hub_server.url}/api/whoami-v2", headers=auth, timeout=5).status_code == 200


def test_persistent_500_gives_up_after_bounded_retries(hub_server):
    api = HfApi()
    api.create_repo("test-user/r")
    # Retry-After: 0 shortens each back-off sleep to 1 s
    hub_server.fail_next(6, status=500, route="preupload", headers={"Retry-After": "0"})
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="test-user/r")
    assert exc.value.response.status_code == 500
    assert hub_server.count("preupload") == 6  # 1 try + 5 retries
    assert hub_server.count("commit") == 0


def test_dataset_repo_refs_commits_paths_info(hub_server):
    api = HfApi()
    api.create_repo("test-user/data", repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b"a,b\n1,2\n",
        path_in_repo="data/train.csv",
        repo_id="test-user/data",
        repo_type="dataset",
        commit_message="add train",
    )
    path = hf_hub_download("test-user/data", "data/train.csv", repo_type="dataset")
    assert open(path, "rb").read() == b"a,b\n1,2\n"
    assert api.dataset_info("test-user/data").id == "test-user/data"
    assert api.list_repo_files("test-user/data", repo_type="dataset") == [".gitattributes", "data/train.csv"]
    commits = api.list_repo_commits("test-user/data", repo_type="dataset")
    assert [c.title for c in commits] == ["add train", "initial commit"]
    refs = api.list_repo_refs("test-user/data", repo_type="dataset")
    assert refs.branches[0].name == "main" and refs.branches[0].target_commit == commits[0].commit_id
    info = api.get_paths_info("test-user/data", ["data/train.csv", "data", "missing"], repo_type="dataset")
    assert sorted(i.path for i in info) == ["data", "data/train.csv"]
    api.delete_file("data/train.csv", repo_id="test-user/data", repo_type="dataset")
    assert hub_server.list_files("test-user/data", repo_type="dataset") == [".gitattributes"]
    # the old commit is still downloadable
    old = hf_hub_download("test-user/data", "data/train.csv", repo_type="dataset", revision=commits[0].commit_id)
    assert open(old, "rb").read() == b"a,b\n1,2\n"
    assert not hub_server.unhandled


def test_xdist_workers_draw_hub_ports_from_disjoint_slices(monkeypatch):
    from hub_server import worker_port_range

    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(worker_port_range(20000, 32000))
    assert slices == [(20000, 24000), (24000, 28000), (28000, 32000)]
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    assert worker_port_range(20000, 32000) == (20000, 32000)
