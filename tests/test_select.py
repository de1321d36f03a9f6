"""`hf-transfer select`: the strategies on hand-checkable numpy features (one row per well-separated cluster, the
known most uncertain rows, k-center's farthest rows, seeds, no repeats, rounds that continue), the probe read per task,
how pool rows are matched with labelled ones, and the command end to end on tiny BERT, ViT and timm models: files
written, rounds continued, labelled rows never picked, bad inputs one line and exit 2."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
from safetensors import safe_open

from hf_transfer.__main__ import main
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.selection import SELECTION_STRATEGIES, SelectionProblem
from hf_transfer.selection.registry import resolve_strategy
from hf_transfer.selection.strategies import select_badge, select_kcenter, select_random, select_typical, typicality
from hf_transfer.selection.uncertainty import PROBE_READINGS, ProbeOutputs, fit_selection_probe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CENTRES = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


def blobs(rows_per_blob: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated 2-D clusters (spread 0.5, 10 apart) and each row's cluster."""
    rng = np.random.default_rng(seed)
    features = np.concatenate([c + rng.normal(0, 0.5, (rows_per_blob, 2)) for c in CENTRES])
    return features, np.repeat(np.arange(len(CENTRES)), rows_per_blob)


def single_label_probe(probabilities, names=("a", "b", "c")) -> ProbeOutputs:
    return ProbeOutputs(np.asarray(probabilities, dtype=float), list(names), PROBE_READINGS.get("single_label"))


def rows(picks) -> list[int]:
    return [p.row for p in picks]


# --- strategies on numpy features ---------------------------------------------------------------------------------


def test_typical_cold_start_picks_one_central_row_per_cluster():
    features, cluster = blobs()
    picks = select_typical(SelectionProblem(features, np.ones(len(features), bool), 4, seed=0))
    assert sorted(cluster[rows(picks)]) == [0, 1, 2, 3]
    density = typicality(features)
    for pick in picks:  # the densest row of its cluster, and near the centre
        members = np.flatnonzero(cluster == cluster[pick.row])
        assert pick.row == members[np.argmax(density[members])]
        assert np.linalg.norm(features[pick.row] - CENTRES[cluster[pick.row]]) < 1.0
        assert "most typical row of cluster" in pick.reason and "x the pool's mean" in pick.reason


def test_typical_skips_clusters_the_labelled_rows_cover():
    features, cluster = blobs()
    labelled = CENTRES[[0, 3]] + 0.1  # two clusters already labelled
    picks = select_typical(SelectionProblem(features, np.ones(len(features), bool), 2, labelled=labelled, seed=0))
    assert sorted(cluster[rows(picks)]) == [1, 2]


def test_kcenter_by_hand_and_from_the_labelled_rows():
    # 1-D: labelled at 0; the farthest row is 10 (row 3); then 2 is farther from {0, 10} than 1 is.
    features = np.array([[0.5], [1.0], [2.0], [10.0]])
    picks = select_kcenter(SelectionProblem(features, np.ones(4, bool), 2, labelled=np.array([[0.0]])))
    assert rows(picks) == [3, 2]
    assert picks[0].reason.startswith("farthest from every labelled or picked row (distance 10.000")


def test_margin_and_entropy_pick_the_hand_known_most_uncertain_rows():
    probe = single_label_probe(
        [
            [0.90, 0.05, 0.05],  # margin 0.85
            [0.40, 0.35, 0.25],  # margin 0.05, the highest entropy
            [0.50, 0.48, 0.02],  # margin 0.02, the smallest
            [0.60, 0.30, 0.10],  # margin 0.30, yet entropy 0.90 > row 2's 0.78
        ]
    )
    problem = SelectionProblem(np.eye(4), np.ones(4, bool), 2, probe=probe)
    margin = SELECTION_STRATEGIES.get("margin").select(problem)
    assert rows(margin) == [2, 1]
    assert margin[0].reason == "margin 0.020 between a (0.50) and b (0.48)"
    entropy = SELECTION_STRATEGIES.get("entropy").select(problem)
    assert rows(entropy) == [1, 3] and entropy[0].reason.startswith("entropy 1.081 of at most 1.099 nats")
    # A row that is not available is never picked, however uncertain.
    assert rows(
        SELECTION_STRATEGIES.get("margin").select(SelectionProblem(np.eye(4), [1, 1, 0, 1], 2, probe=probe))
    ) == [
        1,
        3,
    ]


def test_multi_label_margin_is_the_closest_label_to_its_threshold():
    probe = ProbeOutputs(
        np.array([[0.9, 0.1], [0.55, 0.9], [0.2, 0.32]]),
        ["x", "y"],
        PROBE_READINGS.get("multi_label"),
        thresholds=np.array([0.5, 0.3]),
    )
    picks = SELECTION_STRATEGIES.get("margin").select(SelectionProblem(np.eye(3), np.ones(3, bool), 3, probe=probe))
    assert rows(picks) == [2, 1, 0]  # distances 0.02, 0.05, 0.2
    assert picks[0].reason == "label y at 0.32, 0.020 from its threshold 0.30"
    entropy = SELECTION_STRATEGIES.get("entropy").select(SelectionProblem(np.eye(3), np.ones(3, bool), 1, probe=probe))
    # Mean binary entropy ignores the thresholds: row 2 (0.56 nats) before row 1 (0.51) and row 0 (0.33).
    assert rows(entropy) == [2] and entropy[0].reason.startswith("mean binary entropy 0.564 nats over 2 labels")


def test_a_probe_fitted_on_labelled_rows_finds_the_row_between_the_classes():
    features, cluster = blobs(10)
    keep = cluster < 2  # two classes: the clusters at (0, 0) and (10, 0)
    labelled, labels = torch.tensor(features[keep]), torch.tensor(cluster[keep])
    pool = torch.tensor([[0.5, 0.0], [5.0, 0.2], [9.5, 0.0], [1.0, 0.5]])
    probe = fit_selection_probe(labelled, labels, pool, "single_label", ["left", "right"], "margin")
    problem = SelectionProblem(pool.numpy(), np.ones(4, bool), 1, probe=probe)
    assert rows(SELECTION_STRATEGIES.get("margin").select(problem)) == [1]
    assert rows(SELECTION_STRATEGIES.get("badge").select(problem)) == [1]  # the longest gradient embedding


def test_badge_distances_are_those_of_the_explicit_gradient_embeddings():
    features, _ = blobs(5)
    probe = single_label_probe(np.random.default_rng(4).dirichlet(np.ones(3), len(features)))
    picks = select_badge(SelectionProblem(features, np.ones(len(features), bool), 4, seed=0, probe=probe))
    embedding = (probe.residual()[:, :, None] * features[:, None, :]).reshape(len(features), -1)  # (N, C*D)
    assert picks[0].row == int(np.argmax(np.linalg.norm(embedding, axis=1)))
    for i in range(1, 4):
        centres = embedding[[p.row for p in picks[:i]]]
        expected = ((embedding[picks[i].row] - centres) ** 2).sum(1).min()
        assert f"squared distance {expected:.3g} to the nearest pick" in picks[i].reason


@pytest.mark.parametrize("name", [n for n in SELECTION_STRATEGIES if n != "auto"])
def test_every_strategy_is_seeded_never_repeats_and_picks_only_available_rows(name):
    features, _ = blobs(15)
    rng = np.random.default_rng(1)
    probe = single_label_probe(rng.dirichlet(np.ones(3), len(features)))
    available = np.ones(len(features), bool)
    available[::7] = False
    run = lambda seed, k=20: rows(  # noqa: E731
        SELECTION_STRATEGIES.get(name).select(SelectionProblem(features, available, k, seed=seed, probe=probe))
    )
    first = run(0)
    assert first == run(0) and len(set(first)) == 20 and available[first].all()
    every = run(0, int(available.sum()))  # the whole pool: every available row once
    assert sorted(every) == list(np.flatnonzero(available))


@pytest.mark.parametrize("name", ["kcenter", "random", "margin", "entropy"])
def test_two_rounds_give_what_one_round_gives(name):
    features, _ = blobs(15)
    probe = single_label_probe(np.random.default_rng(2).dirichlet(np.ones(3), len(features)))
    select = SELECTION_STRATEGIES.get(name).select
    available = np.ones(len(features), bool)
    one = rows(select(SelectionProblem(features, available, 10, labelled=CENTRES[:1], seed=3, probe=probe)))
    first = rows(select(SelectionProblem(features, available, 4, labelled=CENTRES[:1], seed=3, probe=probe)))
    second = rows(
        select(SelectionProblem(features, available, 6, labelled=CENTRES[:1], picked_before=first, seed=3, probe=probe))
    )
    assert first + second == one and not set(first) & set(second)


@pytest.mark.parametrize("name", ["typical", "badge"])
def test_later_rounds_never_repeat_a_row(name):
    features, _ = blobs(15)
    probe = single_label_probe(np.random.default_rng(2).dirichlet(np.ones(3), len(features)))
    select = SELECTION_STRATEGIES.get(name).select
    picked: list[int] = []
    for _ in range(3):
        picked += rows(
            select(SelectionProblem(features, np.ones(len(features), bool), 7, picked_before=picked, probe=probe))
        )
    assert len(picked) == len(set(picked)) == 21


def test_random_follows_the_seed():
    features, _ = blobs()
    problem = lambda seed: SelectionProblem(features, np.ones(len(features), bool), 10, seed=seed)  # noqa: E731
    assert rows(select_random(problem(0))) == rows(select_random(problem(0))) != rows(select_random(problem(1)))


def test_problem_and_strategy_errors_are_one_line():
    with pytest.raises(ConfigError, match="more than the 2 pool rows left"):
        SelectionProblem(np.eye(3), [1, 1, 0], 3)
    with pytest.raises(ConfigError, match="at least 1"):
        SelectionProblem(np.eye(3), [1, 1, 1], 0)
    with pytest.raises(ConfigError, match="needs labelled rows"):
        SELECTION_STRATEGIES.get("margin").select(SelectionProblem(np.eye(3), [1, 1, 1], 1))
    with pytest.raises(ConfigError, match="--strategy 'coreset' is not one of auto, typical, kcenter"):
        SELECTION_STRATEGIES.get("coreset")


def test_auto_is_typical_cold_badge_with_classes_and_kcenter_for_numbers():
    assert resolve_strategy("auto", labelled=False).name == "typical"
    assert resolve_strategy("auto", True, "single_label").name == "badge"
    assert resolve_strategy("auto", True, "multi_label").name == "badge"
    assert resolve_strategy("auto", True, "regression").name == "kcenter"
    assert resolve_strategy("margin", True, "single_label").name == "margin"


# --- the command, end to end on tiny models -----------------------------------------------------------------------

SUBJECTS = ["the match", "the election", "the recipe", "the concert", "the storm"]
VERBS = ["was great", "went badly", "surprised everyone", "was postponed"]


def write_text_data(directory) -> tuple[str, str, list[str]]:
    """pool.csv (id, text: 20 sentences, the last repeating the first) and labelled.csv (6 labelled sentences, two of
    them pool rows written with other spacing)."""
    texts = [f"{s} {v}" for s in SUBJECTS for v in VERBS]
    pool = pd.DataFrame({"id": [f"p{i}" for i in range(len(texts) + 1)], "text": texts + [texts[0]]})
    pool.to_csv(directory / "pool.csv", index=False)
    labelled = pd.DataFrame(
        {
            "text": [
                "  the match   was great",
                "the storm went badly ",
                "a new sentence",
                "another one",
                "the end",
                "x y",
            ],
            "label": ["good", "bad", "good", "bad", "good", "bad"],
        }
    )
    labelled.to_csv(directory / "labelled.csv", index=False)
    return str(directory / "pool.csv"), str(directory / "labelled.csv"), list(pool["text"])


def select(*flags, output_dir, cache_dir) -> pd.DataFrame:
    assert main(["select", *map(str, flags), "--output_dir", str(output_dir), "--cache_dir", str(cache_dir)]) == 0
    return pd.read_csv(output_dir / "selected.csv")


def test_text_rounds_continue_and_never_pick_labelled_or_repeated_rows(tiny_bert, tmp_path):
    pool, labelled, texts = write_text_data(tmp_path)
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = select(
        "--model_name_or_path", tiny_bert, "--pool_file", pool, "--num_rows", 5, output_dir=out, cache_dir=cache
    )
    assert list(first.columns) == ["round", "order", "pool_row", "id", "text", "strategy", "reason"]
    assert (first["strategy"] == "typical").all() and first["reason"].str.startswith("most typical row").all()
    assert [texts[r] for r in first["pool_row"]] == list(first["text"])
    assert list(first["id"]) == [f"p{r}" for r in first["pool_row"]]
    both = select(
        "--model_name_or_path", tiny_bert, "--pool_file", pool, "--train_file", labelled, "--num_rows", 12,
        output_dir=out, cache_dir=cache,
    )  # fmt: skip
    assert len(both) == 17 and both["pool_row"].is_unique and list(both["round"]) == [1] * 5 + [2] * 12
    second = both[both["round"] == 2]
    assert (second["strategy"] == "badge").all() and second["reason"].str.startswith("margin").all()
    # Labelled (by text, whitespace aside): pool rows 0 ("the match was great"), its repeat 20, and 17.
    assert not {0, 17, 20} & set(both["pool_row"])
    state = json.loads((out / "selection.json").read_text())
    assert [r["strategy"] for r in state["rounds"]] == ["typical", "badge"] and state["rounds"][1]["labelled_rows"] == 6
    assert state["pool"]["rows"] == 21 and len(list(cache.glob("features/*.safetensors"))) == 2
    # One row is left (21, less 3 labelled or repeated, less 17 picked): asking for 3 is refused.
    assert main(["select", "--model_name_or_path", tiny_bert, "--pool_file", pool, "--train_file", labelled,
                 "--num_rows", "3", "--output_dir", str(out), "--cache_dir", str(cache)]) == 2  # fmt: skip


@pytest.mark.parametrize("strategy", ["random", "kcenter", "margin"])
def test_same_seed_same_rows_and_two_rounds_equal_one(tiny_bert, tmp_path, strategy):
    pool, labelled, _ = write_text_data(tmp_path)
    base = ["--model_name_or_path", tiny_bert, "--pool_file", pool, "--train_file", labelled, "--strategy", strategy]
    cache = tmp_path / "cache"
    one = select(*base, "--num_rows", 7, "--seed", 5, output_dir=tmp_path / "one", cache_dir=cache)
    again = select(*base, "--num_rows", 7, "--seed", 5, output_dir=tmp_path / "again", cache_dir=cache)
    pd.testing.assert_frame_equal(one, again)
    select(*base, "--num_rows", 3, "--seed", 5, output_dir=tmp_path / "two", cache_dir=cache)
    two = select(*base, "--num_rows", 4, "--seed", 5, output_dir=tmp_path / "two", cache_dir=cache)
    assert list(two["pool_row"]) == list(one["pool_row"]) and list(two["round"]) == [1] * 3 + [2] * 4


def write_images(directory, count: int, seed: int) -> list:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        colour = rng.integers(0, 256, 3)
        pixels = np.clip(colour + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
        path = directory / f"img_{i:02d}.png"
        PIL.Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("arch", ["vit", "timm"])
def test_image_folder_pool_with_labelled_class_folders(tiny, tmp_path, arch):
    pool_paths = write_images(tmp_path / "pool", 14, seed=0)
    for k, name in enumerate(("cat", "dog")):
        write_images(tmp_path / "labelled" / name, 3, seed=10 + k)
    (tmp_path / "labelled" / "cat" / "copy.png").write_bytes(pool_paths[4].read_bytes())  # pool image 4 is labelled
    out, cache = tmp_path / "out", tmp_path / "cache"
    flags = ["--model_name_or_path", tiny(arch), "--pool_dir", tmp_path / "pool"]
    cold = select(*flags, "--num_rows", 3, output_dir=out, cache_dir=cache)
    assert list(cold.columns) == ["round", "order", "pool_row", "image", "strategy", "reason"]
    assert set(cold["image"]) <= {p.name for p in pool_paths} and (cold["strategy"] == "typical").all()
    warm = select(*flags, "--train_dir", tmp_path / "labelled", "--num_rows", 10, output_dir=out, cache_dir=cache)
    assert warm["pool_row"].is_unique and len(warm) == 13 and 4 not in set(warm["pool_row"][3:])
    assert (warm["strategy"][3:] == "badge").all()
    # Features only: the timm checkpoint's pretrained head (rank's LEEP reads it) is not run over the pool.
    for file in (cache / "features").glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            assert set(f.keys()) == {"embedding", "labels"}


def test_a_file_of_image_paths_and_a_built_in_can_be_the_pool(tiny_vit, tiny_bert, tmp_path):
    paths = write_images(tmp_path / "images", 6, seed=3)
    pool = tmp_path / "pool.jsonl"
    pd.DataFrame({"image_path": [str(p) for p in paths]}).to_json(pool, orient="records", lines=True)
    picked = select("--model_name_or_path", tiny_vit, "--pool_file", pool, "--num_rows", 2, "--strategy", "kcenter",
                    output_dir=tmp_path / "o", cache_dir=tmp_path / "c")  # fmt: skip
    assert set(picked["image"]) <= {str(p) for p in paths} and picked["pool_row"].is_unique
    builtin = select("--model_name_or_path", tiny_bert, "--dataset_name", "tweet_sentiment", "--max_pool_samples", 30,
                     "--num_rows", 3, output_dir=tmp_path / "b", cache_dir=tmp_path / "c")  # fmt: skip
    assert list(builtin.columns) == ["round", "order", "pool_row", "text", "strategy", "reason"] and len(builtin) == 3


def test_multi_label_margin_reads_thresholds_and_regression_refuses_uncertainty(tiny_bert, tmp_path, capsys):
    pool, _, _ = write_text_data(tmp_path)
    texts = [f"{s} {v}" for s in SUBJECTS[:2] for v in VERBS] * 2
    multi = tmp_path / "multi.csv"
    pd.DataFrame({"text": texts, "label": ["a,b", "a", "b", "a"] * 4}).to_csv(multi, index=False)
    base = ["--model_name_or_path", tiny_bert, "--pool_file", pool, "--num_rows", 4]
    picked = select(*base, "--train_file", multi, "--task", "multi_label", "--strategy", "margin",
                    output_dir=tmp_path / "m", cache_dir=tmp_path / "c")  # fmt: skip
    assert picked["reason"].str.contains("from its threshold").all()
    numbers = tmp_path / "numbers.csv"
    pd.DataFrame({"text": texts, "label": np.linspace(0.5, 3.0, len(texts))}).to_csv(numbers, index=False)
    args = ["select", *map(str, base), "--train_file", str(numbers), "--output_dir", str(tmp_path / "r")]
    assert main([*args, "--strategy", "entropy"]) == 2
    assert "which a regression probe does not give" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(args) == 0  # auto: k-center for a regression target
    assert (pd.read_csv(tmp_path / "r" / "selected.csv")["strategy"] == "kcenter").all()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num_rows", "0"], "--num_rows must be a positive integer"),
        (["--num_rows", "100"], "more than the 18 pool rows left to pick"),
        (["--pool_file", "missing.csv"], "--pool_file 'missing.csv' does not exist"),
        (["--strategy", "margin", "--no_train"], "needs the rows labelled so far"),
        (["--strategy", "coreset"], "--strategy 'coreset' is not one of"),
        (["--train_dir", "IMAGES"], "holds vision rows but --pool_file"),
        (["--dataset_name", "digits"], "Pass exactly one pool"),
        (["--other_pool"], "holds a selection from another pool"),
        (["--train_file", "TAGS"], "labels words (token classification); select picks whole rows"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(tiny_bert, tmp_path, capsys, flags, message):
    pool, labelled, _ = write_text_data(tmp_path)
    write_images(tmp_path / "images" / "a", 2, 0)
    write_images(tmp_path / "images" / "b", 2, 1)
    out = tmp_path / "out"
    if "--other_pool" in flags:
        select("--model_name_or_path", tiny_bert, "--pool_file", pool, "--num_rows", 2, output_dir=out,
               cache_dir=tmp_path / "c")  # fmt: skip
        other = tmp_path / "other.csv"
        pd.DataFrame({"text": ["one", "two", "three"]}).to_csv(other, index=False)
        flags = ["--pool_file", str(other), "--num_rows", "1"]
    args = {"--model_name_or_path": tiny_bert, "--pool_file": pool, "--num_rows": "2", "--output_dir": str(out)}
    if "--no_train" not in flags:
        args["--train_file"] = labelled
    if "--train_dir" in flags:
        del args["--train_file"]
    (tmp_path / "tags.conll").write_text("the\tO\nmatch\tB-EVT\n\nthe\tO\nstorm\tB-EVT\n")
    flags = [f.replace("IMAGES", str(tmp_path / "images")) for f in flags if f != "--no_train"]
    flags = [f.replace("TAGS", str(tmp_path / "tags.conll")) for f in flags]
    for flag, value in zip(flags[::2], flags[1::2]):
        args[flag] = value
    capsys.readouterr()
    assert main(["select", *[x for pair in args.items() for x in pair]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.slow  # the second stage (make test-slow): a fresh interpreter imports torch
def test_the_installed_command_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hf_transfer", "select", "--model_name_or_path", "minilm", "--num_rows", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Pass exactly one pool: --pool_file, --pool_dir or --dataset_name."
    )


def test_labelled_rows_of_one_class_cannot_fit_an_uncertainty_probe():
    with pytest.raises(DataError, match=r"hold one class \(only\): --strategy margin needs a probe of two or more"):
        fit_selection_probe(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), "single_label",
                            ["only"], "margin")  # fmt: skip
