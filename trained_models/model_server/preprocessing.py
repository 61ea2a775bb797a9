"""Image decoding and preprocessing: the one contract shared by training and serving.

Training imports this module, so a served model sees exactly the pixels it was trained on.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000  # a 50-megapixel image or a decompression bomb is refused
ALLOWED_FORMATS = {"PNG", "JPEG", "GIF", "WEBP", "BMP", "MPO"}


class ImageError(ValueError):
    """An input that is not a usable image; the message names the problem."""


@dataclass(frozen=True)
class Preprocessing:
    """Prediction-relevant preprocessing; it is part of a model's fingerprint."""

    height: int = 96
    width: int = 96
    resize: str = "pad_to_square"  # keep aspect ratio: pad with background, then resize
    background: str = "white"  # transparent pixels are composited on this
    scale: str = "0_1"  # uint8 / 255 -> float32 in [0, 1]
    color: str = "RGB"  # the only channel order served; part of the fingerprint, so it stays a field
    resample: str = "bilinear"

    def __post_init__(self) -> None:
        if self.color != "RGB":
            raise ValueError(f"unsupported color {self.color!r}: images are always converted to RGB")
        if self.resample not in _RESAMPLE:
            raise ValueError(f"unknown resample {self.resample!r}: use one of {sorted(_RESAMPLE)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _clean(e: BaseException) -> str:
    """A decoder's message without Python object reprs (`<_io.BytesIO object at 0x...>`)."""
    return _REPR.sub("the image", str(e)).strip() or type(e).__name__


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode encoded bytes into a PIL image (first frame), refusing oversize or unknown input."""
    if not data:
        raise ImageError("empty file: zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise ImageError(f"unsupported image format {img.format!r}")
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"image too large: {w}x{h} = {w * h} pixels (limit {max_pixels})")
            img.seek(0)  # animated GIF/WebP: the first frame only, never decode all frames
            img.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not a decodable image: unknown or unsupported format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"not a decodable image: {_clean(e)}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"corrupt or truncated image: {_clean(e)}") from None
    return img


def to_rgb(img: Image.Image, background: str = "white") -> Image.Image:
    """Any PIL mode (RGBA, P, LA, L, I;16, CMYK, ...) to RGB, transparency composited."""
    img = ImageOps.exif_transpose(img) if img.format in ("JPEG", "MPO") else img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8))
    if img.mode == "P" and "transparency" in img.info or img.mode in ("LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        canvas = Image.new("RGBA", img.size, background)
        canvas.alpha_composite(img)
        return canvas.convert("RGB")
    return img.convert("RGB")


def pad_to_square(img: Image.Image, background: str = "white") -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), background)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def preprocess_image(img: Image.Image, spec: Preprocessing) -> np.ndarray:
    """A decoded PIL image to a float32 array (H, W, 3) exactly as the model expects it."""
    rgb = to_rgb(img, spec.background)
    if spec.resize == "pad_to_square":
        rgb = pad_to_square(rgb, spec.background)
    elif spec.resize != "stretch":
        raise ValueError(f"unknown resize policy {spec.resize!r}")
    rgb = rgb.resize((spec.width, spec.height), _RESAMPLE[spec.resample])
    arr = np.asarray(rgb, dtype=np.float32)
    if spec.scale == "0_1":
        arr = arr / 255.0
    elif spec.scale != "none":
        raise ValueError(f"unknown scale {spec.scale!r}")
    return arr


def preprocess_bytes(
    data: bytes, spec: Preprocessing, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    return preprocess_image(open_image(data, max_pixels=max_pixels), spec)


def preprocess_file(path, spec: Preprocessing) -> np.ndarray:
    with open(path, "rb") as f:
        return preprocess_bytes(f.read(), spec)
