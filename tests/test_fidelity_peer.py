"""Peer test: torch-fidelity's ``calculate_metrics`` and genbench on identical inputs.

Our domain classifier is registered with torch-fidelity as a feature extractor, both pipelines see
the same uint8 images in the same batches, and FID / KID / IS / precision-recall must agree.
Pitfalls handled (PROTOCOLS.md): ``cuda=False`` on CPU, no torch-fidelity disk cache (its key
ignores the weights), only dataset inputs (its generator path uses ``np.int``, gone in NumPy 2).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from genbench.data import load_dataset
from genbench.features import extract, get_extractor
from genbench.metrics.quality import evaluate_quality

BATCH = 64  # both pipelines run the network on the same batches, so float32 rounding is identical
_names = itertools.count()


class U8Images(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W), as torch-fidelity's loaders give them."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def register_with_torch_fidelity(ours) -> str:
    """Register genbench's extractor with torch-fidelity; features go out in float64 as ours are used."""
    import torch_fidelity
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class GenbenchExtractor(FeatureExtractorBase):
        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)

        @staticmethod
        def get_provided_features_list():
            return "features", "logits"

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)

        def forward(self, x):
            feats, logits = ours.model(x.float() / 255.0)  # the same [0, 1] floats genbench's extract feeds
            out = {"features": feats.double(), "logits": logits.double()}
            return tuple(out[k] for k in self.features_list)

    name = f"genbench-domain-{next(_names)}-{ours.id}"
    torch_fidelity.register_feature_extractor(name, GenbenchExtractor)
    return name


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cache = tmp_path_factory.mktemp("peer-cache")
    ours = get_extractor("domain:digits", cache_dir=cache, device="cpu")
    ds = load_dataset("digits")
    real_u8 = (ds.test.x * 255).round().to(torch.uint8)
    # fakes: training digits with pixel noise, a distribution near but not at the reference
    g = torch.Generator().manual_seed(0)
    noisy = (ds.train.x[:400] + 0.15 * torch.randn(ds.train.x[:400].shape, generator=g)).clamp(0, 1)
    fake_u8 = (noisy * 255).round().to(torch.uint8)
    return ours, register_with_torch_fidelity(ours), real_u8, fake_u8, cache


def tf_metrics(name, input1, input2, **kw):
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=U8Images(input1), input2=U8Images(input2), feature_extractor=name, cuda=False, cache=False,
        batch_size=BATCH, save_cpu_ram=True, verbose=False, **kw,
    )


def test_fid_kid_is_agree_with_torch_fidelity(setup):
    ours, name, real_u8, fake_u8, _ = setup
    seed, m, subsets = 7, 300, 25
    # input1 = real so that KID draws the real subset first, as genbench does; IS is of input1
    peer = tf_metrics(name, real_u8, fake_u8, isc=True, fid=True, kid=True, kid_subset_size=m, kid_subsets=subsets,
                      isc_splits=10, rng_seed=seed)
    real = extract(ours, real_u8, batch_size=BATCH)
    fake = extract(ours, fake_u8, batch_size=BATCH)
    rows = evaluate_quality(real["features"], fake["features"], fake_probs=fake["probs"], real_probs=real["probs"],
                            extractor_id=ours.id, ref_split="test", seed=seed, kid_subset_size=m, kid_subsets=subsets,
                            metrics=["fid", "kid", "is"])
    by = {r.metric: r for r in rows}
    assert by["fid"].value == pytest.approx(peer["frechet_inception_distance"], rel=1e-6)
    assert by["kid"].value == pytest.approx(peer["kernel_inception_distance_mean"], rel=1e-6)
    assert by["kid"].std == pytest.approx(peer["kernel_inception_distance_std"], rel=1e-6)
    assert by["is_real"].value == pytest.approx(peer["inception_score_mean"], rel=1e-3)
    assert by["is_real"].std == pytest.approx(peer["inception_score_std"], rel=1e-3)
    # the comparison has teeth: the sets differ clearly, and the numbers are far from trivial
    assert by["fid"].value > 0.5 and by["kid"].value > 3 * by["kid"].std
    rel = {k: abs(a / b - 1) for k, a, b in (("fid", by["fid"].value, peer["frechet_inception_distance"]),
                                            ("kid", by["kid"].value, peer["kernel_inception_distance_mean"]),
                                            ("is", by["is_real"].value, peer["inception_score_mean"]))}
    print("relative difference to torch-fidelity:", rel)


def test_precision_recall_agree_with_torch_fidelity(setup):
    ours, name, real_u8, fake_u8, _ = setup
    # torch-fidelity 0.4: input1 is the generated set for precision/recall
    peer = tf_metrics(name, fake_u8, real_u8, prc=True, prc_neighborhood=3)
    real = extract(ours, real_u8, batch_size=BATCH)["features"]
    fake = extract(ours, fake_u8, batch_size=BATCH)["features"]
    rows = {r.metric: r.value for r in evaluate_quality(real, fake, extractor_id=ours.id, ref_split="test",
                                                        metrics=["precision", "recall"])}
    assert rows["precision"] == pytest.approx(peer["precision"], abs=1e-6)  # float32 mean there
    assert rows["recall"] == pytest.approx(peer["recall"], abs=1e-6)
    assert 0.05 < rows["precision"] < 0.99 and 0.05 < rows["recall"] < 0.99


def test_is_of_generated_set_agrees_with_torch_fidelity(setup):
    ours, name, real_u8, fake_u8, _ = setup
    peer = tf_metrics(name, fake_u8, real_u8, isc=True, isc_splits=5, rng_seed=3)
    fake = extract(ours, fake_u8, batch_size=BATCH)
    row = evaluate_quality(np.zeros((2, 1)), np.zeros((2, 1)), fake_probs=fake["probs"], extractor_id=ours.id,
                           ref_split="test", seed=3, is_splits=5, metrics=["is"])[0]
    assert row.value == pytest.approx(peer["inception_score_mean"], rel=1e-3)
    assert row.std == pytest.approx(peer["inception_score_std"], rel=1e-3)
