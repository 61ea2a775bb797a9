"""Preprocessing on every kind of image the server may meet."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model_server.preprocessing import ImageError, Preprocessing, open_image, preprocess_bytes

SPEC = Preprocessing()


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def check(arr: np.ndarray) -> None:
    assert arr.shape == (96, 96, 3) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 1.0


def test_rgba_transparency_is_composited_on_white():
    img = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red
    img.paste((0, 0, 255, 255), (10, 10, 30, 30))
    arr = preprocess_bytes(encode(img, "PNG"), SPEC)
    check(arr)
    assert np.allclose(arr[0, 0], 1.0)  # transparent corner -> white, not red or black
    assert arr[48, 48, 2] > 0.95 and arr[48, 48, 0] < 0.05


def test_palette_with_transparency():
    img = Image.new("P", (30, 30), 0)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (5, 5, 25, 25))
    arr = preprocess_bytes(encode(img, "PNG", transparency=0), SPEC)
    check(arr)
    assert np.allclose(arr[0, 0], 1.0) and arr[48, 48, 1] > 0.95


def test_grayscale_and_16_bit():
    check(preprocess_bytes(encode(Image.new("L", (20, 20), 128), "PNG"), SPEC))
    img16 = Image.fromarray(np.full((20, 20), 65535, np.uint16))
    arr = preprocess_bytes(encode(img16, "PNG"), SPEC)
    check(arr)
    assert arr.min() > 0.99  # full-scale 16-bit white stays white


def test_cmyk_jpeg():
    arr = preprocess_bytes(encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"), SPEC)
    check(arr)
    assert arr[48, 48, 0] > 0.8 and arr[48, 48, 1] < 0.2  # CMYK (0,255,255,0) is red


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (20, 20), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    arr = preprocess_bytes(data, SPEC)
    assert arr[48, 48, 0] > 0.9 and arr[48, 48, 1] < 0.1


def test_one_pixel_and_non_square():
    check(preprocess_bytes(encode(Image.new("RGB", (1, 1), (0, 0, 0)), "PNG"), SPEC))
    arr = preprocess_bytes(encode(Image.new("RGB", (100, 20), (0, 0, 0)), "PNG"), SPEC)
    assert np.allclose(arr[0, 48], 1.0) and arr[48, 48].max() < 0.05  # padded top, black middle


def test_very_large_image_within_and_over_the_limit():
    big = encode(Image.new("RGB", (4000, 3000), (0, 128, 0)), "JPEG")
    check(preprocess_bytes(big, SPEC))
    with pytest.raises(ImageError, match="too large"):
        preprocess_bytes(big, SPEC, max_pixels=1_000_000)


@pytest.mark.parametrize("data,words", [
    (b"", "empty"), (b"GIF89a" + b"\0" * 5, "not a decodable"), (b"%PDF-1.4 hello", "not a decodable")])
def test_garbage(data, words):
    with pytest.raises(ImageError, match=words):
        open_image(data)


def test_truncated_jpeg():
    data = encode(Image.new("RGB", (64, 64), (10, 20, 30)), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        preprocess_bytes(data[: len(data) // 2], SPEC)


def test_unsupported_format_is_refused():
    with pytest.raises(ImageError, match="unsupported image format"):
        open_image(encode(Image.new("RGB", (8, 8)), "TIFF"))
