"""NN gallery: the PNG is readable with the documented size and content, the JSON pairs are right."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from genbench.reports.gallery import PAD, SEP, SEPARATOR, _scale, gallery_size, write_nn_gallery


@pytest.fixture(scope="module")
def digits_arrays():
    from genbench.data import load_dataset

    ds = load_dataset("digits")
    return ds.train.x.numpy(), ds.test.x.numpy()


def _sk(fake, train, k):
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(train.reshape(len(train), -1).astype(np.float64))
    return nn.kneighbors(fake.reshape(len(fake), -1).astype(np.float64))


def test_gallery_file_size_and_pairs(tmp_path, digits_arrays):
    train, test = digits_arrays
    rng = np.random.default_rng(0)
    # 5 exact copies hidden among 40 held-out images: they must be the first 5 rows
    copies = rng.choice(len(train), 5, replace=False)
    fake = np.concatenate([test[:35], train[copies]])
    png = write_nn_gallery(tmp_path / "run", fake, train, n=8, k=3)
    assert png == tmp_path / "run" / "nn_gallery.png"
    with Image.open(png) as im:
        im.load()
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == gallery_size(8, 3, 8, 8) == (PAD + 4 * (32 + PAD) + SEP, PAD + 8 * (32 + PAD))
        pixels = np.asarray(im)

    meta = json.loads(png.with_suffix(".json").read_text())
    assert meta["png"] == "nn_gallery.png" and meta["k"] == 3 and meta["space"] == "pixels"
    pairs = meta["pairs"]
    assert len(pairs) == 8
    assert [p["fake_index"] for p in pairs[:5]] == [35, 36, 37, 38, 39]  # distance 0, ties by index
    assert [p["train_index"][0] for p in pairs[:5]] == copies.tolist()
    sk_d, sk_i = _sk(fake, train, 3)
    for p in pairs:
        assert p["train_index"] == sk_i[p["fake_index"]].tolist()
        np.testing.assert_allclose(p["distance"], sk_d[p["fake_index"]], atol=1e-10)
    firsts = [p["distance"][0] for p in pairs]
    assert firsts == sorted(firsts)

    # the picture holds what the JSON says: row 0 = the copy, then its training image, upscaled x4
    s = _scale(8, 8)
    cell = lambda img: np.repeat(np.repeat((img[0] * 255).round(), s, 0), s, 1)  # noqa: E731
    row0 = pixels[PAD : PAD + 32]
    np.testing.assert_array_equal(row0[:, PAD : PAD + 32, 0], cell(fake[35]))
    x1 = PAD + (32 + PAD) + SEP
    np.testing.assert_array_equal(row0[:, x1 : x1 + 32, 1], cell(train[pairs[0]["train_index"][0]]))
    assert tuple(row0[0, PAD + 32 + PAD]) == SEPARATOR


def test_precomputed_neighbours_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.random((30, 3, 16, 16), dtype=np.float32)
    fake = rng.random((10, 3, 16, 16), dtype=np.float32)
    d, i = _sk(fake, train, 4)
    # a different (e.g. feature-space) neighbour list is taken as given
    i = i[:, ::-1].copy()
    png = write_nn_gallery(tmp_path / "g.png", fake, train, n=20, k=2, nn=(d, i), space_name="domain-digits")
    assert png == tmp_path / "g.png"
    with Image.open(png) as im:
        assert im.size == gallery_size(10, 2, 16, 16)  # n capped at the number of samples
    meta = json.loads((tmp_path / "g.json").read_text())
    assert meta["space"] == "domain-digits" and len(meta["pairs"]) == 10
    assert meta["pairs"][0]["train_index"] == i[meta["pairs"][0]["fake_index"], :2].tolist()


def test_no_partial_files_and_clear_errors(tmp_path):
    train = np.zeros((5, 1, 8, 8))
    with pytest.raises(ValueError, match="per-image shapes"):
        write_nn_gallery(tmp_path, np.zeros((2, 1, 8, 7)), train)
    with pytest.raises(ValueError, match="nn must be"):
        write_nn_gallery(tmp_path, np.zeros((2, 1, 8, 8)), train, k=2, nn=(np.zeros((2, 1)), np.zeros((2, 1), int)))
    with pytest.raises(ValueError, match="outside the declared range"):
        write_nn_gallery(tmp_path, np.full((2, 1, 8, 8), 2.0), train)
    assert list(tmp_path.iterdir()) == []


def test_a_shifted_copycat_gallery_names_the_shift(tmp_path, digits_arrays):
    """Training images moved one pixel right escape the plain neighbours; the transform check flags them, and the
    gallery shows them first beside the *shifted* training image labelled with the shift."""
    from genbench.metrics.copies import match_transforms, transform_copy_rate
    from genbench.reports.gallery import LABEL_WIDTH, MATCH_SEPARATOR

    train, test = digits_arrays
    shifted = np.zeros_like(train[:30])
    shifted[..., 1:] = train[:30, ..., :-1]  # content moves right: dx = +1
    fake = np.concatenate([test[:20], shifted])
    row = transform_copy_rate(fake, train, test, shape=(1, 8, 8))
    matches = match_transforms(fake, train, shape=(1, 8, 8), threshold=row.params["threshold"])
    for i in range(20, 50):  # every copycat: its own training image, the shift, flagged
        m = matches[i]
        assert m["train"] == i - 20 and m["transform"] == "dx=+1,dy=+0" and m["caption"] == "shift (+1, 0)"
        assert m["flagged"] and m["distance"] < row.params["threshold"]
        np.testing.assert_allclose(m["image"], fake[i], atol=1e-12)  # the training image after the shift
    assert row.value == pytest.approx(30 / 50)  # the metric is unchanged by the per-sample function
    ex = row.params["examples"][0]
    assert {k: matches[ex["sample"]][k] for k in ex if k != "sample"} == {k: ex[k] for k in ex if k != "sample"}

    png = write_nn_gallery(tmp_path, fake, train, n=8, k=2, matches=dict(enumerate(matches)))
    meta = json.loads(png.with_suffix(".json").read_text())
    shown = [p["fake_index"] for p in meta["pairs"]]
    assert all(i >= 20 for i in shown)  # flagged copycats first, although held-out images are nearer in pixels
    assert {p["match"]["caption"] for p in meta["pairs"]} == {"shift (+1, 0)"}
    assert all(p["match"]["flagged"] and "image" not in p["match"] for p in meta["pairs"])
    assert meta["layout"]["columns"][-2:] == ["train_transformed", "label"]
    with Image.open(png) as im:
        im.load()
        assert im.format == "PNG" and im.size == gallery_size(8, 2, 8, 8, matched=True)
        pixels = np.asarray(im)
    s = _scale(8, 8)
    x = PAD + 3 * (32 + PAD) + SEP
    assert tuple(pixels[PAD, x]) == MATCH_SEPARATOR
    cell = np.repeat(np.repeat((matches[shown[0]]["image"][0] * 255).round(), s, 0), s, 1)
    np.testing.assert_array_equal(pixels[PAD : PAD + 32, x + SEP : x + SEP + 32, 0], cell)
    label = pixels[PAD : PAD + 33, x + SEP + 32 + PAD : x + SEP + 32 + PAD + LABEL_WIDTH]
    assert (label != 128).any()  # the label is drawn
    # without matches the gallery is as before
    plain = write_nn_gallery(tmp_path / "plain.png", fake, train, n=8, k=2)
    assert "match" not in json.loads(plain.with_suffix(".json").read_text())["pairs"][0]
    with Image.open(plain) as im:
        assert im.size == gallery_size(8, 2, 8, 8)
