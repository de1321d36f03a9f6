"""recipes/cross_modal.py and hf_transfer.cross_modal: a text encoder's body classifies images through a trained patch
embedder, on every text family of the tiny matrix; each body tuning trains what it says; a pretrained body is the
checkpoint's and a random one is not; the saved model reloads in a fresh process (its own code, or the registered
class) and `pipeline("image-classification")` reproduces the reported test accuracy."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2Model

from hf_transfer.cross_modal import BODY_TUNINGS, CrossModalArguments
from hf_transfer.cross_modal.model import NEW_MODULES, create_cross_modal_model, merge_body_adapters
from hf_transfer.errors import ConfigError
from hf_transfer.models import ModelArguments
from recipe_runner import OFFLINE_ENV, ROOT, assert_ok, run_recipe
from tiny_models import TINY_ARCHITECTURES

TEXT_FAMILIES = [name for name, arch in TINY_ARCHITECTURES.items() if arch.modality == "text"]
DATA = {"dataset_name": "fashion_mnist", "max_train_samples": 60, "max_eval_samples": 30}
TRAIN = ["--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--save_strategy", "no"]
SMALL = CrossModalArguments(image_size=16, patch_size=4)


def _data_flags(data: dict) -> list[str]:
    return [part for key, value in data.items() for part in (f"--{key}", str(value))]


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("gpt2")
    GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100)).save_pretrained(directory)
    return str(directory)


def _build(path: str, args: CrossModalArguments = SMALL, tuning: str = "full"):
    model, _ = create_cross_modal_model(args, ["a", "b", "c"], ModelArguments(model_name_or_path=path))
    BODY_TUNINGS.get(tuning).prepare(model, None)
    return model


# ---- arguments ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"body_tuning": "half"}, "--body_tuning 'half' is not one of frozen, lora, full"),
        ({"body_init": "imagenet"}, "--body_init 'imagenet' is not one of pretrained, random"),
        ({"image_size": 30, "patch_size": 4}, "not a multiple of --patch_size 4"),
        ({"patch_size": 0}, "must be positive"),
        ({"head_learning_rate": -1.0}, "--head_learning_rate"),
        ({"classifier_dropout": 1.0}, "--classifier_dropout"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CrossModalArguments(**kwargs)


# ---- the model, on every text family -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_every_text_family_classifies_images(tiny, family, one_torch_thread):
    """Each encoder's body reads the patches as inputs_embeds (ALBERT and ELECTRA at their narrower embedding width)
    and every trainable weight gets a gradient."""
    model = _build(tiny(family))
    out = model(torch.randn(4, 3, 16, 16), labels=torch.tensor([0, 1, 2, 0]))
    assert out.logits.shape == (4, 3)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert model.patch_embed.out_channels == model.body.get_input_embeddings().embedding_dim


def test_causal_decoders_and_vision_models_are_refused(tiny, tiny_gpt2):
    with pytest.raises(ConfigError, match=r"is a causal \(left-to-right\) model: its first token"):
        _build(tiny_gpt2)
    with pytest.raises(ConfigError, match="is a vision model; cross-modal fine-tuning needs a text encoder"):
        _build(tiny("vit"))
    # 64 / 4 = 16 x 16 patches + [CLS] > the tiny BERT's 160 positions
    with pytest.raises(ConfigError, match="cannot read 257 tokens"):
        _build(tiny("bert"), CrossModalArguments(image_size=64, patch_size=4))


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_tunings_train_what_they_say(tiny, family, one_torch_thread):
    """frozen: of the body only LayerNorms and position embeddings (Lu et al.); lora: those and adapters; full: all
    of it that runs. The new parts train in all three; a frozen step leaves attention weights as they were."""

    def trainable(tuning):
        model = _build(tiny(family), tuning=tuning)
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        return model, names

    for tuning in BODY_TUNINGS:
        _, names = trainable(tuning)
        assert all(any(n == m or n.startswith(f"{m}.") for n in names) for m in NEW_MODULES), (tuning, names)
        assert not any(".pooler." in n for n in names)
    model, frozen = trainable("frozen")
    body = [n for n in frozen if n.startswith("body.")]
    assert body and all(("norm" in n.lower()) or ("position_embeddings" in n) for n in body), body
    assert any("position_embeddings" in n for n in body)
    _, lora = trainable("lora")
    assert {n.replace("base_model.model.", "") for n in lora if "lora_" not in n} == set(frozen)
    assert any("lora_" in n for n in lora)
    full_model, full = trainable("full")
    assert len(full) > len(frozen) and any("attention" in n for n in full)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model(torch.randn(4, 3, 16, 16), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(frozen)
    assert "classifier.weight" in changed and "patch_embed.weight" in changed


def test_pretrained_body_is_the_checkpoint_and_random_is_not(tiny):
    from transformers import AutoModel

    original = AutoModel.from_pretrained(tiny("roberta")).state_dict()
    pretrained = _build(tiny("roberta")).body.state_dict()
    for name, value in original.items():
        assert torch.equal(pretrained[name], value), name
    random_args = CrossModalArguments(image_size=16, patch_size=4, body_init="random")
    torch.manual_seed(1)
    random_body = _build(tiny("roberta"), random_args).body.state_dict()
    torch.manual_seed(2)
    other = _build(tiny("roberta"), random_args).body.state_dict()
    weight = "encoder.layer.0.attention.self.query.weight"
    assert random_body.keys() == original.keys()
    assert not torch.equal(random_body[weight], original[weight])
    assert not torch.equal(random_body[weight], other[weight])  # the seed draws it


def test_lora_adapters_merge_into_a_plain_body(tiny):
    model = _build(tiny("bert"), tuning="lora").eval()
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)  # non-zero adapters, so merging changes the weights
    pixels = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(pixels).logits
        merged = merge_body_adapters(model)
        after = merged(pixels).logits
    assert not any("lora" in name for name in merged.state_dict())
    assert torch.allclose(before, after, atol=1e-5)


# ---- the recipe: train, save, reload in a fresh process, pipeline -------------------------------------------------


def test_recipe_outputs_reload_and_pipeline_reproduces_test_accuracy(tiny, tmp_path):
    """Three families, three tunings, both inits: each saved folder reloads in a fresh process from its own code and
    as the registered class, and the pipeline's accuracy on the test rows is the reported one."""
    runs = {
        "bert-frozen": ("bert", "frozen", "pretrained"),
        "roberta-lora": ("roberta", "lora", "pretrained"),
        "distilbert-full-random": ("distilbert", "full", "random"),
    }
    results = {}
    for name, (family, tuning, init) in runs.items():
        out = tmp_path / name
        run = assert_ok(
            run_recipe(
                "cross_modal.py",
                "--model_name_or_path",
                tiny(family),
                *_data_flags(DATA),
                "--image_size",
                "16",
                "--body_tuning",
                tuning,
                "--body_init",
                init,
                "--learning_rate",
                "1e-3",
                *TRAIN,
                output_dir=out,
            )
        )
        results[str(out)] = run.results
        assert run.results["trained"] and run.results["body_tuning"] == tuning and run.results["patches"] == 16
        saved = load_file(out / "model.safetensors")
        original = load_file(f"{tiny(family)}/model.safetensors")
        assert not any("lora" in key for key in saved)
        query = next(k for k in original if "q" in k.split(".")[-2] and k.endswith("weight") and "layer" in k)
        if tuning == "frozen":  # the frozen body's attention is the checkpoint's
            assert torch.equal(saved[f"body.{query}"], original[query])
        else:  # trained (LoRA merged in), or drawn at random
            assert not torch.equal(saved[f"body.{query}"], original[query])
        card = (out / "README.md").read_text()
        assert "image-classification" in card and "import hf_transfer.cross_modal" in card and tuning in card
        assert "on a text encoder's body, reading images" in card, [
            line for line in card.splitlines() if "Strategy" in line
        ]
        assert (out / "modeling_cross_modal.py").is_file() and (out / "configuration_cross_modal.py").is_file()

    data = {**DATA}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "reload_cross_modal.py"), json.dumps(list(results)), json.dumps(data)],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    for folder, scores in reloaded.items():
        assert scores["remote_code"] == scores["registered"], folder  # the saved code and the registered class agree
        assert scores["accuracy"] == pytest.approx(results[folder]["test_accuracy"]), folder
    assert any(len(set(scores["registered"])) > 1 for scores in reloaded.values())  # not one class for every image


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model_name_or_path", "GPT2"], "is a causal (left-to-right) model"),
        (["--model_name_or_path", "VISION"], "is a vision model; cross-modal fine-tuning needs a text encoder"),
        (["--patch_size", "5"], "--image_size 16 is not a multiple of --patch_size 5"),
        (["--body_tuning", "half"], "--body_tuning 'half' is not one of frozen, lora, full"),
        (
            ["--dataset_name", "tweet_sentiment"],
            "cross-modal fine-tuning classifies images; tweet_sentiment is text data",
        ),
    ],
)
def test_bad_inputs_stop_with_one_line(tiny, tiny_gpt2, tmp_path, flags, message):
    flags = [{"GPT2": tiny_gpt2, "VISION": tiny("vit")}.get(flag, flag) for flag in flags]
    base = ["--model_name_or_path", tiny("bert"), *_data_flags(DATA), "--image_size", "16", *TRAIN]
    run = run_recipe("cross_modal.py", *base, *flags, output_dir=tmp_path / "out")
    assert run.returncode == 2, run.output[-3000:]
    assert message in run.output
    assert "Traceback" not in run.output


def test_new_parts_get_the_head_learning_rate(tiny):
    """The patch embedder, the [CLS] vector (a bare parameter) and the classifier learn at --head_learning_rate."""
    from hf_transfer.finetuning import create_param_groups

    model = _build(tiny("bert"), tuning="frozen")
    groups = create_param_groups(
        model,
        head_prefixes=NEW_MODULES,
        learning_rate=1e-4,
        weight_decay=0.0,
        decay_parameter_names=set(),
        head_learning_rate=1e-2,
    )
    fast = {name for group in groups if group["lr"] == 1e-2 for name in group["names"]}
    assert fast == {"patch_embed.weight", "patch_embed.bias", "cls_token", "classifier.weight", "classifier.bias"}


def test_help_lists_the_flags_and_a_misspelled_flag_is_one_line(tmp_path):
    run = run_recipe("cross_modal.py", "--help")
    assert run.returncode == 0, run.output[-2000:]
    assert all(flag in run.output for flag in ("--body_tuning", "--body_init", "--patch_size", "--lora_r"))
    run = run_recipe("cross_modal.py", "--patch_sise", "4", output_dir=tmp_path / "out")
    assert run.returncode == 2 and "Did you mean --patch_size" in run.output, run.output[-2000:]
