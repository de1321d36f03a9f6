"""Every image a user's folder can hold, as the 8-bit RGB picture it shows.

`PIL.Image.convert("RGB")` is right for 8-bit modes only: a 16-bit greyscale PNG (`I;16`, or `I` as Pillow
opens some of them) is clipped at 255, so a mid-grey scan arrives 97-99% white; float images (`F`) are clipped
the same way; alpha (`RGBA`, `LA`, `PA`, palettes with transparency) is dropped, showing whatever colour the
transparent pixels happen to store. `to_rgb` scales high-depth greyscale by its bit depth, and composites
transparent images onto white, the background they are usually drawn on.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import DataError

__all__ = ["to_rgb"]

BACKGROUND = (255, 255, 255)


def _grey_to_rgb(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L").convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """`I;16*` (16-bit), `I` (32-bit integers) and `F` (floats) greyscale to 8 bits by their value range."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        return _grey_to_rgb(values / 257.0)  # 0..65535 -> 0..255
    if image.mode == "F" and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        return _grey_to_rgb(values * 255.0)  # a [0, 1] float image
    top = values.max() if values.size else 0.0
    if values.size and values.min() >= 0.0:
        if top <= 255.0:
            return _grey_to_rgb(values)
        if top <= 65535.0:
            return _grey_to_rgb(values / 257.0)  # 16-bit data in a 32-bit container (Pillow's `I` for 16-bit PNGs)
    low = values.min() if values.size else 0.0
    span = (top - low) or 1.0
    return _grey_to_rgb((values - low) / span * 255.0)  # no declared range: stretch to 8 bits


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB (see the module docstring); raises `DataError` for a mode Pillow cannot convert."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(image)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # 1, L, CMYK, YCbCr, RGBX, ...
    except ValueError as err:
        raise DataError(
            f"An image in mode {mode} cannot be converted to RGB ({err}); convert the files to PNG or JPEG."
        ) from err
