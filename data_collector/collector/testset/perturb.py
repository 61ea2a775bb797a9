"""The robustness suite: named, versioned perturbations of the labelled test images.

Each labelled (non-probe) test image gets one copy per perturbation, made with Pillow from the
image's bytes and a seed taken from its sha256, so a copy is the same bytes on every run (with
the same Pillow): it is stored as an image of its own (kind "perturbed", linked to its source's
sha256 and the perturbation's name) and collected once per model like any other image.
Sizes are relative to the model's input (96 px): a blur of 1.5 px at 96 px is 1.5 * side / 96.

A copy's path is virtual: `perturbed/<suite version>/<perturbation>/<source path>[.jpg]`. It is
made again from the source file whenever its bytes are needed (to send it, to show it).

Changing what a perturbation does needs a new SUITE_VERSION (a new name for new images).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

SUITE = "robustness-v1"
PREFIX = f"perturbed/{SUITE}/"
KIND = "perturbed"
MODEL_SIDE = 96.0  # the shipped models' input side: perturbation sizes are given at this scale


def _rgb(img, background=(255, 255, 255)):
    """The image on white, as the model server flattens transparency."""
    from PIL import Image

    img = img.convert("RGBA")
    flat = Image.new("RGBA", img.size, (*background, 255))
    flat.alpha_composite(img)
    return flat.convert("RGB")


def _scale(img) -> float:
    return max(img.size) / MODEL_SIDE


def _brightness(factor: float):
    def f(img, _rng):
        from PIL import ImageEnhance

        return ImageEnhance.Brightness(_rgb(img)).enhance(factor)
    return f


def _contrast(factor: float):
    def f(img, _rng):
        from PIL import ImageEnhance

        return ImageEnhance.Contrast(_rgb(img)).enhance(factor)
    return f


def _blur(img, _rng):
    from PIL import ImageFilter

    return _rgb(img).filter(ImageFilter.GaussianBlur(radius=1.5 * _scale(img)))


def _rotate(img, rng):
    from PIL import Image

    angle = float(rng.uniform(5.0, 12.0) * rng.choice([-1.0, 1.0]))
    return _rgb(img).rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(255, 255, 255))


def _downscale(img, _rng):
    from PIL import Image

    rgb = _rgb(img)
    small = max(1, round(32 * _scale(img)))  # a 32 px thumbnail of a 96 px input, scaled back up
    w, h = rgb.size
    ratio = small / max(w, h)
    tiny = rgb.resize((max(1, round(w * ratio)), max(1, round(h * ratio))), Image.Resampling.BOX)
    return tiny.resize((w, h), Image.Resampling.BILINEAR)


def _jpeg(img, _rng):
    return _rgb(img)  # encoded at quality 20 below


# name -> (what it does, the function); the order is the suite's
PERTURBATIONS: dict[str, tuple[str, Callable]] = {
    "darker": ("brightness x0.6", _brightness(0.6)),
    "brighter": ("brightness x1.4", _brightness(1.4)),
    "low-contrast": ("contrast x0.5", _contrast(0.5)),
    "blur": ("Gaussian blur, radius 1.5 px at 96 px", _blur),
    "jpeg-q20": ("JPEG quality 20", _jpeg),
    "rotate": ("rotation by 5-12 degrees either way (seeded per image)", _rotate),
    "downscale": ("down to 32 px at 96 px and back (resize)", _downscale),
}
JPEG_QUALITY = 20


def cache_key(source_sha256: str, name: str) -> str:
    """What a copy's sha256 is remembered under: the suite, Pillow's version, the source, the name."""
    import PIL

    return f"{SUITE}:{PIL.__version__}:{source_sha256}:{name}"


def perturbed_path(source_path: str, name: str) -> str:
    return f"{PREFIX}{name}/{source_path}" + (".jpg" if name == "jpeg-q20" else "")


def parse_path(path: str) -> tuple[str, str] | None:
    """(perturbation, source path) of a perturbed image's path; None for any other path."""
    if not path.startswith(PREFIX):
        return None
    name, _, rest = path[len(PREFIX):].partition("/")
    if name not in PERTURBATIONS or not rest:
        return None
    if name == "jpeg-q20":
        rest = rest.removesuffix(".jpg")
    return name, rest


def make(data: bytes, source_sha256: str, name: str) -> bytes:
    """The perturbed copy's bytes (PNG, or JPEG for jpeg-q20); raises ValueError for bytes that
    are not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.seek(0)
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as e:
        raise ValueError(f"not an image: {e}") from None
    index = list(PERTURBATIONS).index(name)
    rng = np.random.default_rng([int(source_sha256[:16], 16), index])
    out = PERTURBATIONS[name][1](img, rng)
    buf = io.BytesIO()
    if name == "jpeg-q20":
        out.save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        out.save(buf, "PNG")
    return buf.getvalue()


def read(test_dir: Path, path: str) -> bytes:
    """The bytes of a test image by its stored path: the file, or a perturbed copy made again."""
    parsed = parse_path(path)
    if parsed is None:
        return (Path(test_dir) / path).read_bytes()
    name, source = parsed
    data = (Path(test_dir) / source).read_bytes()
    return make(data, hashlib.sha256(data).hexdigest(), name)
