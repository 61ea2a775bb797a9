"""The robustness suite's copies: the same bytes on every run, a different picture per
perturbation, virtual paths that read back to their source, and a clear refusal of non-images."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from collector.testset.perturb import PERTURBATIONS, PREFIX, make, parse_path, perturbed_path, read


def _photo(seed: int = 0, side: int = 96) -> bytes:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 220, side)
    pixels = np.stack([ramp[None, :].repeat(side, 0), ramp[:, None].repeat(side, 1),
                       rng.integers(0, 255, (side, side))], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)


def test_each_perturbation_is_deterministic_and_changes_the_picture_its_own_way():
    data = _photo()
    sha = hashlib.sha256(data).hexdigest()
    copies = {name: make(data, sha, name) for name in PERTURBATIONS}
    assert copies == {name: make(data, sha, name) for name in PERTURBATIONS}  # same bytes again
    assert len(set(copies.values())) == len(PERTURBATIONS)
    original = _pixels(data)
    for name, copy in copies.items():
        assert _pixels(copy).shape == original.shape, name
        assert np.abs(_pixels(copy) - original).mean() > 1.0, name
    assert _pixels(copies["darker"]).mean() < original.mean() < _pixels(copies["brighter"]).mean()
    assert _pixels(copies["low-contrast"]).std() < original.std()
    assert Image.open(io.BytesIO(copies["jpeg-q20"])).format == "JPEG"


def test_the_rotation_is_seeded_by_the_image_not_by_the_run():
    a, b = _photo(1), _photo(2)
    rot_a = make(a, hashlib.sha256(a).hexdigest(), "rotate")
    assert rot_a == make(a, hashlib.sha256(a).hexdigest(), "rotate")
    assert rot_a != make(a, hashlib.sha256(b).hexdigest(), "rotate")  # another seed: another angle


def test_a_copys_path_reads_back_to_its_source_and_its_bytes(tmp_path):
    data = _photo(3)
    (tmp_path / "pikachu").mkdir()
    (tmp_path / "pikachu" / "p.png").write_bytes(data)
    for name in PERTURBATIONS:
        path = perturbed_path("pikachu/p.png", name)
        assert path.startswith(PREFIX)
        assert parse_path(path) == (name, "pikachu/p.png")
        assert read(tmp_path, path) == make(data, hashlib.sha256(data).hexdigest(), name)
    assert read(tmp_path, "pikachu/p.png") == data
    assert parse_path("pikachu/p.png") is None
    assert parse_path(f"{PREFIX}no-such-perturbation/pikachu/p.png") is None
    assert parse_path(f"{PREFIX}darker/") is None


def test_bytes_that_are_not_an_image_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="not an image"):
        make(b"GIF89a but not really", "0" * 64, "blur")
