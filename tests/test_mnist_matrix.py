"""The built-in MNIST benchmark matrix (`genbench run mnist`) and the `mnist-binary` dataset.

Both run on tiny IDX files written here in the documented format (see tests/test_data.py), 28x28
so that every family's MNIST nets build: the matrix must validate (names, dataset kinds, config
overrides built exactly as the cells build them) before any compute is spent on real MNIST.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_data import make_mnist_arrays, write_mnist

from genbench.data import DataFileError, load_dataset
from genbench.data.files import MNIST_BINARISE_SEED
from genbench.generators import GENERATORS
from genbench.harness.loop import resolve_configs
from genbench.matrix import builtin_matrices, load_matrix


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """Tiny MNIST (24 training images, 7 test images, 28x28) under $GENBENCH_DATA/mnist."""
    arrays = make_mnist_arrays(seed=11, n_train=24, n_test=7, rows=28, cols=28)
    arrays["train_images"][:, :4] = 0  # exact zeros and 255s: their binarised pixels are certain
    arrays["train_images"][:, -4:] = 255
    write_mnist(tmp_path / "mnist", arrays)
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    return arrays


def test_mnist_matrix_is_built_in_and_validates(fake_mnist):
    assert "mnist" in builtin_matrices()
    m = load_matrix("mnist")  # check_names: generators, datasets, extractor, overrides
    assert m.name == "mnist"
    cells = m.cells()
    pairs = {(c.generator.name, c.dataset) for c in cells}
    assert {("gan", "mnist"), ("aae", "mnist"), ("vae", "mnist-binary"), ("pixelcnn", "mnist-binary")} <= pairs
    for ds in ("mnist", "mnist-binary"):  # the controls on both datasets
        assert {("copycat", ds), ("heldout", ds), ("independent-pixels", ds)} <= pairs
    assert len({c.cell_id for c in cells}) == len(cells)
    infos = {ds: load_dataset(ds).info for ds in ("mnist", "mnist-binary")}
    for c in cells:
        spec = GENERATORS.get(c.generator.name)
        info = infos[c.dataset]
        assert info.kind in spec.dataset_kinds
        ev = c.evaluation
        assert "likelihood" in ev.families and "quality" in ev.families and "coverage" in ev.families
        assert ev.extractor in ("domain", "domain:mnist")  # the MNIST classifier's features
        assert ev.n_eval <= ev.n_samples and ev.ais_steps == 0
        if spec.trained:  # the configs build and the nets construct on 28x28 data
            model_cfg, train_cfg = resolve_configs(spec, info, c.generator.model or None, c.generator.train or None)
            assert train_cfg.steps <= 3000 and train_cfg.threads == 1  # CPU budgets
            model = spec.build(model_cfg, load_dataset(c.dataset))
            assert sum(p.numel() for p in model.parameters()) > 0
    # the published protocols: Parzen on 10,000 samples of continuous MNIST; VAE and PixelCNN on binarised
    parzen = [c for c in cells if c.generator.name in ("gan", "aae")]
    assert {c.dataset for c in parzen} == {"mnist"} and all(c.evaluation.n_samples == 10000 for c in parzen)
    vae = next(c for c in cells if c.generator.name == "vae")
    assert vae.evaluation.iwae_k >= 100


def test_mnist_binary_is_binary_deterministic_with_the_mnist_splits(fake_mnist):
    grey = load_dataset("mnist")
    a, b = load_dataset("mnist-binary"), load_dataset("mnist-binary")
    assert a.info.name == "mnist-binary" and a.info.levels == 2 and a.info.binary
    assert a.info.n_classes == 10 and a.info.shape == grey.info.shape == (1, 28, 28)
    assert a.info.split_sizes == grey.info.split_sizes and set(a.splits) == {"train", "val", "test"}
    assert a.info.content_hash == b.info.content_hash != grey.info.content_hash
    assert f"seed {MNIST_BINARISE_SEED}" in a.info.split_rule
    for s in ("train", "val", "test"):
        xa, xg = a.split(s).x, grey.split(s).x
        assert set(torch.unique(xa).tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(xa, b.split(s).x, rtol=0, atol=0)  # a static binarisation
        torch.testing.assert_close(a.split(s).y, grey.split(s).y, rtol=0, atol=0)  # same images, same order
        assert bool((xa[xg == 0] == 0).all()) and bool((xa[xg == 1] == 1).all())
    # pixel ~ Bernoulli(grey): with uniform grey levels, the binarised mean tracks the grey mean
    xg = torch.cat([grey.split(s).x for s in ("train", "val", "test")])
    xb = torch.cat([a.split(s).x for s in ("train", "val", "test")])
    mid = (xg > 0) & (xg < 1)
    n = int(mid.sum())
    assert n > 10000
    assert abs(float(xb[mid].mean() - xg[mid].mean())) < 4 * 0.5 / np.sqrt(n)


def test_mnist_binary_missing_files_name_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    with pytest.raises(DataFileError, match="mnist: missing"):
        load_dataset("mnist-binary")
