"""Sample-quality metrics against closed forms, brute-force definitions and peers (scipy, torch-fidelity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbench.metrics import METRICS, spec_for_output
from genbench.metrics import quality as q
from genbench.metrics.bootstrap import bootstrap_ci, bootstrap_replicates
from genbench.metrics.quality import (
    QualityWarning,
    density_coverage,
    evaluate_quality,
    feature_statistics,
    fid_inf_sizes,
    fid_infinity,
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)


def exact_moment_sample(rng, n, mean, cov):
    """n points whose sample mean and (ddof=1) sample covariance equal ``mean`` and ``cov`` exactly."""
    d = len(mean)
    z = rng.normal(size=(n, d))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample cov = I
    return z @ np.linalg.cholesky(cov).T + mean


def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.5 * np.eye(d))


# ----------------------------------------------------------------------------------------- FID


def test_fid_matches_closed_form_for_commuting_gaussians():
    # diagonal covariances commute: FID = |mu1-mu2|^2 + sum (sqrt a_i - sqrt b_i)^2
    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 0.3, 0.5, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, -1.0, 2.0]), np.array([0.5, 1.0, 0.0, 0.0])
    x = exact_moment_sample(rng, 400, mu1, np.diag(a))
    y = exact_moment_sample(rng, 300, mu2, np.diag(b))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-10)


def test_fid_matches_closed_form_for_non_commuting_2d_gaussians():
    # for 2x2 PSD M: Tr M^1/2 = sqrt(Tr M + 2 sqrt(det M)); here M ~ S1 S2 (same eigenvalues)
    rng = np.random.default_rng(1)
    s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.0, 0.5])
    tr_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    x = exact_moment_sample(rng, 500, mu1, s1)
    y = exact_moment_sample(rng, 500, mu2, s2)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)


def test_fid_of_large_gaussian_samples_converges_to_population_value():
    rng = np.random.default_rng(2)
    s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    tr_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = 1.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt  # means differ by 1 in one coordinate
    n = 200_000
    x = rng.multivariate_normal([0.0, 0.0], s1, size=n)
    y = rng.multivariate_normal([1.0, 0.0], s2, size=n)
    # sampling error of FID at this n is ~ 1e-2 (std of the plug-in statistics ~ 1/sqrt(n) x O(1))
    assert frechet_distance(x, y) == pytest.approx(expected, abs=0.03)


def test_fid_identical_sets_is_zero_and_fid_is_symmetric():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    y = rng.normal(size=(250, 16)) * 2 + 1
    assert abs(frechet_distance(x, x)) < 1e-9 * np.trace(np.cov(x, rowvar=False))
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-10)
    assert frechet_distance(x, y) > 1.0


@pytest.mark.parametrize("d", [32, 300])  # 300: above _SINGLE_THREAD_MAX_D, Cholesky and eigenvalues by torch
def test_fid_agrees_with_scipy_sqrtm_at_full_rank(d):
    from scipy import linalg

    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, d)) @ random_spd(rng, d)
    y = rng.normal(size=(600, d)) @ random_spd(rng, d) + 0.3
    m1, m2 = x.mean(0), y.mean(0)
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(c1 @ c2)  # pytorch-fid / clean-fid route
    peer = float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean.real))
    assert frechet_distance(x, y) == pytest.approx(peer, rel=1e-8)


def test_fid_below_feature_dim_warns_and_matches_eigvals_route():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20, 40)), rng.normal(size=(25, 40)) + 0.5
    with pytest.warns(QualityWarning, match=r"n=20 real / 25 fake samples < d=40"):
        ours = frechet_distance(x, y)
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    # torch-fidelity's route: eigenvalues of the non-symmetric product, square roots in complex128
    tr = np.sum(np.sqrt(np.linalg.eigvals(c1 @ c2).astype(complex)).real)
    peer = float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(c1) + np.trace(c2) - 2 * tr)
    assert np.isfinite(ours)
    assert ours == pytest.approx(peer, rel=1e-6)
    rows = evaluate_quality(x, y, extractor_id="pixels", ref_split="test", metrics=["fid"])
    assert any("< d=40" in w for w in rows[0].warnings)


@pytest.mark.parametrize("n,d", [(20, 40), (12, 300)])
def test_fid_of_rank_deficient_covariances_matches_the_sample_space_form(n, d):
    """n <= d: S_r = Xc^T Xc has rank n - 1, and Tr (S_r S_f)^1/2 is the sum of the square roots of the
    eigenvalues of the n x n matrix Xc S_f Xc^T (the nonzero ones are shared): a closed form without any rank
    decision. The default route (pivoted Cholesky, O(d^2 n)) must match it closely; the symmetric-root route
    carries the covariance's rounding noise as tiny eigenvalues and agrees to about 1e-8."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    y = rng.normal(size=(n + 7, d)) + 0.3
    (m1, s1), (m2, s2) = feature_statistics(x), feature_statistics(y)
    xc = (x - m1) / np.sqrt(n - 1)
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(xc @ s2 @ xc.T), 0.0, None)).sum()
    exact = float((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * tr)
    assert frechet_distance_from_stats(m1, s1, m2, s2) == pytest.approx(exact, rel=1e-9)
    assert frechet_distance_from_stats(m1, s1, m2, s2, method="eigh") == pytest.approx(exact, rel=1e-6)
    # constant real features (S_r = 0, e.g. background pixels): the trace term is 0 exactly
    zero = np.zeros((d, d))
    assert frechet_distance_from_stats(m1, zero, m2, s2) == pytest.approx((m1 - m2) @ (m1 - m2) + np.trace(s2),
                                                                         rel=1e-12)


def test_fid_from_stats_bad_shapes():
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        frechet_distance_from_stats(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="mu2 has length 2"):
        frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))


# ---------------------------------------------------------------------------------------- FID∞


def _shifted_gaussians(seed, d, n, mu2):
    """N(0, I) and N(mu, I) samples in d dimensions, |mu|^2 = mu2: the population FID is exactly mu2."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d)) + np.full(d, math.sqrt(mu2 / d))


@pytest.mark.parametrize("seed", range(5))
def test_fid_inf_removes_the_finite_n_bias_of_two_gaussians(seed):
    # d=16, n=400: FID's upward bias (~0.4 here) is larger than the sets' own sampling noise, so the
    # extrapolation's gain shows on every seed. Stated tolerance: FID-inf within 0.3 of the truth.
    truth = 1.0
    real, fake = _shifted_gaussians(seed, 16, 400, truth)
    m = fid_infinity(real, fake, seed=seed)
    fid = frechet_distance(real, fake)
    assert abs(m.value - truth) < abs(fid - truth), (m.value, fid)
    assert abs(m.value - truth) < 0.3
    assert m.params["fid_at_n"] == pytest.approx(fid, rel=1e-9)  # the largest size is both whole sets
    assert m.std_kind == "fit" and m.std > 0 and m.params["sizes"] == fid_inf_sizes(400).tolist()
    assert len(m.params["fid_at_sizes"]) == len(m.params["sizes"]) and m.params["slope"] > 0


def test_fid_inf_of_one_distribution_is_near_zero_and_of_one_set_is_zero():
    # two independent samples of N(0, I): FID at n=300 sits near 0.56; FID-inf within 3 of its std of 0
    for seed in range(5):
        real, fake = _shifted_gaussians(seed, 16, 300, 0.0)
        m = fid_infinity(real, fake, seed=seed)
        assert abs(m.value) < 3 * m.std and abs(m.value) < 0.2, (seed, m.value, m.std)
        assert frechet_distance(real, fake) > 0.4
    # a set against itself: the same subsets of both at every size, so 0 at every size and in the limit
    x = np.random.default_rng(0).normal(size=(120, 5))
    m = fid_infinity(x, x)
    assert abs(m.value) < 1e-9 and max(abs(v) for v in m.params["fid_at_sizes"]) < 1e-9


def test_fid_inf_is_seeded_and_says_when_sizes_fall_below_the_feature_width():
    real, fake = _shifted_gaussians(0, 8, 100, 1.0)
    assert fid_infinity(real, fake, seed=3) == fid_infinity(real, fake, seed=3)
    assert fid_infinity(real, fake, seed=3).value != fid_infinity(real, fake, seed=4).value
    with pytest.warns(QualityWarning, match="at or below the feature width d=8"):
        fid_infinity(real[:, :8], fake[:, :8], min_fraction=0.05)
    with pytest.raises(ValueError, match="sizes must be an integer >= 3"):
        fid_infinity(real, fake, sizes=2)
    with pytest.raises(ValueError, match="min_fraction must be in"):
        fid_infinity(real, fake, min_fraction=1.0)
    with pytest.raises(ValueError, match="at least 3 distinct set sizes"):
        fid_infinity(real[:5], fake[:5], min_fraction=0.9)
    # unequal sets: both are subsampled to each size up to the smaller n
    m = fid_infinity(real, fake[:60])
    assert m.params["sizes"][-1] == 60


# ------------------------------------------------------------------------------------------ IS


def test_inception_score_hand_computations():
    # one-hot over 4 classes, balanced: KL = log 4 for every row, IS = 4
    p = np.eye(4)[[0, 1, 2, 3] * 5]
    mean, std = inception_score(p, splits=1, kind="probs")
    assert mean == pytest.approx(4.0, rel=1e-12) and std == 0.0
    # rows [0.5, 0.5] and [1, 0]: p(y) = [0.75, 0.25];
    # KL1 = 0.5 ln(2/3) + 0.5 ln 2 = 0.5 ln(4/3), KL2 = ln(4/3); mean KL = 0.75 ln(4/3)
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    mean, _ = inception_score(p, splits=1, kind="probs")
    assert mean == pytest.approx((4 / 3) ** 0.75, rel=1e-12)
    # identical rows: p(y|x) = p(y), IS = 1
    assert inception_score(np.full((30, 5), 0.2), splits=3)[0] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_splits_shuffle_and_population_std_match_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    rng = np.random.default_rng(6)
    logits = rng.normal(size=(1003, 12)) * 3
    ours = inception_score(logits, splits=10, seed=2020, kind="logits")
    peer = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=True, rng_seed=2020)
    assert ours[0] == pytest.approx(peer["inception_score_mean"], rel=1e-10)
    assert ours[1] == pytest.approx(peer["inception_score_std"], rel=1e-8)


def test_inception_score_reads_probs_and_logits_alike():
    from scipy.special import softmax

    logits = np.random.default_rng(7).normal(size=(200, 6)) * 2
    probs = softmax(logits, axis=1)
    by_logits = inception_score(logits, kind="logits", seed=1)
    by_probs = inception_score(probs, kind="probs", seed=1)
    auto_l, auto_p = inception_score(logits, seed=1), inception_score(probs, seed=1)
    for other in (by_probs, auto_l, auto_p):
        assert other == pytest.approx(by_logits, rel=1e-10)


def test_inception_score_bad_input():
    with pytest.raises(ValueError, match="fake has 5 samples but at least 10 are needed"):
        inception_score(np.full((5, 3), 1 / 3))
    with pytest.raises(ValueError, match="not probability vectors"):
        inception_score(np.full((20, 3), 0.5), kind="probs")
    with pytest.raises(ValueError, match="NaN"):
        inception_score(np.array([[np.nan, 1.0]] * 20))


# ----------------------------------------------------------------------------------------- KID


def brute_force_unbiased_mmd2(x, y):
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    s_xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    s_yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    s_xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return s_xx / (m * (m - 1)) + s_yy / (m * (m - 1)) - 2 * s_xy / (m * m)


def test_kid_matches_definition_by_brute_force():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)) * 1.5 + 0.2
    # subset_size = n: every subset is the whole set (in some order), so every subset's MMD^2 is this
    mean, std = kernel_inception_distance(x, y, subsets=4, subset_size=12, seed=0)
    assert mean == pytest.approx(brute_force_unbiased_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_matches_torch_fidelity_subsets_exactly():
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(300, 16)), rng.normal(size=(250, 16)) + 0.2
    ours = kernel_inception_distance(x, y, subsets=20, subset_size=100, seed=123)
    peer = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=20, kid_subset_size=100,
                                  rng_seed=123, verbose=False)
    assert ours[0] == pytest.approx(peer["kernel_inception_distance_mean"], rel=1e-10)
    assert ours[1] == pytest.approx(peer["kernel_inception_distance_std"], rel=1e-8)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_kid_low_dimension_explicit_features_match_torch_fidelity(d):
    # at d + d^2 + d^3 < m/4 KID sums the kernel's explicit features instead of forming m x m kernels;
    # the subsets and the estimate are the peer's
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(20 + d)
    x, y = rng.normal(size=(700, d)) * 3.0, rng.normal(size=(650, d)) * 2.5 + 0.1
    ours = kernel_inception_distance(x, y, subsets=15, subset_size=400, seed=5)
    peer = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=15, kid_subset_size=400,
                                  rng_seed=5, verbose=False)
    # the kernel sums are ~m^2 * k: agreement is relative to that scale, not to the small difference
    scale = float(np.mean((x @ x.T / d + 1.0) ** 3))
    assert abs(ours[0] - peer["kernel_inception_distance_mean"]) < 1e-11 * scale
    assert abs(ours[1] - peer["kernel_inception_distance_std"]) < 1e-11 * scale
    assert ours[0] == pytest.approx(peer["kernel_inception_distance_mean"], rel=1e-6)


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    mean, std = kernel_inception_distance(x, y, subsets=50, subset_size=200, seed=0)
    assert abs(mean) < 3 * std + 1e-3
    shifted = kernel_inception_distance(x, y + 1.0, subsets=50, subset_size=200, seed=0)
    assert shifted[0] > 10 * std + 0.1


def test_kid_too_few_samples_is_a_clear_error():
    rng = np.random.default_rng(11)
    with pytest.raises(ValueError, match=r"real has 50 samples but at least 1000 are needed.*smaller subset_size"):
        kernel_inception_distance(rng.normal(size=(50, 4)), rng.normal(size=(2000, 4)))


# ------------------------------------------------------------------------ precision / recall


def test_precision_recall_direction_mode_collapse_and_spread():
    rng = np.random.default_rng(12)
    real = rng.normal(size=(1000, 2))
    collapsed = 0.05 * rng.normal(size=(1000, 2))  # all fakes in the densest real region
    p, r = precision_recall(real, collapsed, k=3)
    assert p > 0.95 and r < 0.1
    spread = 6.0 * rng.normal(size=(1000, 2))  # covers real but most fakes fall outside it
    p, r = precision_recall(real, spread, k=3)
    assert p < 0.35 and r > 0.9


def test_precision_recall_identical_sets_are_one_and_chunks_do_not_matter():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(200, 5))
    assert precision_recall(x, x.copy()) == (1.0, 1.0)  # distance 0 <= radius: each point is in its own ball
    y = rng.normal(size=(150, 5)) + 0.7
    assert precision_recall(x, y, chunk_size=7) == precision_recall(x, y)


def test_precision_recall_matches_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    rng = np.random.default_rng(14)
    real, fake = rng.normal(size=(400, 6)), 0.8 * rng.normal(size=(350, 6)) + 0.3
    # torch-fidelity 0.4: features_1 is the generated set, features_2 the real one
    p_tf, r_tf = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), neighborhood=3)
    # torch-fidelity averages in float32; 1e-6 is far below one sample (1/400) so the counts agree exactly
    assert precision_recall(real, fake, k=3) == (pytest.approx(p_tf, abs=1e-6), pytest.approx(r_tf, abs=1e-6))


def test_precision_recall_needs_k_plus_one_samples():
    with pytest.raises(ValueError, match=r"fake has 3 samples but at least 4 are needed for precision/recall with k=3"):
        precision_recall(np.zeros((10, 2)) + np.arange(10)[:, None], np.ones((3, 2)))


# ------------------------------------------------------------------------ density / coverage


def test_density_coverage_expectations_for_same_distribution():
    # Naeem et al. 2020: same distribution -> E[density] = 1, E[coverage] = 1 - prod (N-i)/(N+M-i)
    rng = np.random.default_rng(15)
    n = m = 1500
    k = 5
    dens, covs = [], []
    for _ in range(3):
        d, c = density_coverage(rng.normal(size=(n, 4)), rng.normal(size=(m, 4)), k=k)
        dens.append(d)
        covs.append(c)
    expected_cov = 1 - np.prod([(n - i) / (n + m - i) for i in range(1, k + 1)])
    assert np.mean(covs) == pytest.approx(expected_cov, abs=0.01)
    assert np.mean(dens) == pytest.approx(1.0, abs=0.06)


def test_density_coverage_identical_and_collapsed():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(300, 3))
    assert density_coverage(x, x.copy())[1] == 1.0
    d, c = density_coverage(x, 0.02 * rng.normal(size=(300, 3)))
    assert c < 0.1 and d > 1.0  # collapsed fakes pile into the dense centre balls: density over 1


# ---------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_of_a_mean_difference_matches_normal_theory():
    rng = np.random.default_rng(17)
    real, fake = rng.normal(0, 1, size=800), rng.normal(0.3, 2, size=600)
    ci = bootstrap_ci(lambda r, f: f.mean() - r.mean(), real, fake, n_boot=2000, seed=0)
    half = 1.959964 * math.sqrt(real.var(ddof=1) / 800 + fake.var(ddof=1) / 600)
    centre = fake.mean() - real.mean()
    assert ci.low == pytest.approx(centre - half, abs=0.15 * half)
    assert ci.high == pytest.approx(centre + half, abs=0.15 * half)
    assert ci.std == pytest.approx(half / 1.959964, rel=0.1)


def test_bootstrap_is_seeded():
    x = np.random.default_rng(18).normal(size=(100, 2))
    a = bootstrap_replicates(lambda v: v.mean(), x, n_boot=20, seed=3)
    assert np.array_equal(a, bootstrap_replicates(lambda v: v.mean(), x, n_boot=20, seed=3))
    assert not np.array_equal(a, bootstrap_replicates(lambda v: v.mean(), x, n_boot=20, seed=4))
    with pytest.raises(ValueError, match="n_boot must be an integer >= 1"):
        bootstrap_ci(np.mean, x, n_boot=0, seed=0)


# ---------------------------------------------------------------------------- evaluate_quality


def test_evaluate_quality_rows_protocols_and_reduced_kid_subset():
    rng = np.random.default_rng(19)
    real, fake = rng.normal(size=(359, 8)), rng.normal(size=(300, 8)) + 0.1
    probs = rng.dirichlet(np.ones(10), size=300)
    rows = evaluate_quality(real, fake, fake_probs=probs, extractor_id="domain-digits-1234abcd", ref_split="test",
                            seed=0, extractor_info={"test_accuracy": 0.98})
    by = {r.metric: r for r in rows}
    assert [r.metric for r in rows] == ["fid", "fid-inf", "is", "kid", "precision", "recall", "density", "coverage",
                                        "vendi", "vendi_real"]
    assert str(by["fid"].protocol) == "fid@domain-digits-1234abcd/n=359v300/ref=test"
    assert str(by["kid"].protocol) == "kid@domain-digits-1234abcd/n=359v300/ref=test/m=300/subsets=100/seed=0"
    assert str(by["precision"].protocol).endswith("/k=3") and str(by["coverage"].protocol).endswith("/k=5")
    assert str(by["is"].protocol) == "is@domain-digits-1234abcd/n=300/splits=10/seed=0" and by["is"].n == {"fake": 300}
    assert by["kid"].protocol.fixed == (("m", 300), ("subsets", 100)) and by["kid"].params["m"] == 300
    assert any("reduced from 1000 to m=300" in w for w in by["kid"].warnings)
    assert by["kid"].std_kind == "subsets" and by["is"].std_kind == "splits"
    assert by["fid"].n == {"real": 359, "fake": 300}
    assert all(r.params["extractor"] == {"test_accuracy": 0.98} for r in rows)
    # values are the pure functions' values
    assert by["fid"].value == frechet_distance(real, fake)
    assert by["kid"].value == kernel_inception_distance(real, fake, subset_size=300, seed=0)[0]
    assert (by["precision"].value, by["recall"].value) == precision_recall(real, fake)
    assert (by["density"].value, by["coverage"].value) == density_coverage(real, fake)
    assert (by["is"].value, by["is"].std) == inception_score(probs, seed=0)
    for r in rows:
        out = r.metric.removesuffix("_real")
        spec = spec_for_output(out)
        assert (r.higher_is_better, r.target) == (spec.higher_is_better(out), spec.target(out))
    # density's ideal is about 1 (a mode-collapsed set scores above 1): a target, not "higher is better"
    assert by["density"].target == 1.0 and by["density"].higher_is_better is None
    assert by["density"].direction == "target=1"


def test_evaluate_quality_bootstrap_intervals():
    rng = np.random.default_rng(20)
    real, fake = rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 0.5
    rows = evaluate_quality(real, fake, extractor_id="pixels", ref_split="test", n_boot=30, seed=1,
                            metrics=["fid", "precision", "coverage"])
    for r in rows:
        assert r.ci is not None and r.ci[0] <= r.ci[1] and r.ci_level == 0.95
        assert r.std_kind == "bootstrap" and r.std > 0 and r.params["n_boot"] == 30
    prec = next(r for r in rows if r.metric == "precision")
    assert prec.ci[0] <= prec.value <= prec.ci[1]  # membership resampling is centred on the estimate
    again = evaluate_quality(real, fake, extractor_id="pixels", ref_split="test", n_boot=30, seed=1,
                             metrics=["fid", "precision", "coverage"])
    assert [r.ci for r in rows] == [r.ci for r in again]


def test_evaluate_quality_metric_selection_and_errors():
    rng = np.random.default_rng(21)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    # the registered name (and its underscore spelling) selects both outputs
    rows = evaluate_quality(real, fake, extractor_id="pixels", ref_split="all", metrics=["precision_recall"])
    assert [r.metric for r in rows] == ["precision", "recall"]
    with pytest.raises(ValueError, match="Did you mean: fid"):
        evaluate_quality(real, fake, extractor_id="pixels", ref_split="all", metrics=["fdi"])
    with pytest.raises(ValueError, match="'is' needs fake_probs"):
        evaluate_quality(real, fake, extractor_id="pixels", ref_split="all", metrics=["is"])
    bad = fake.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"fake has 1 NaN and 0 Inf values in 1 of 50 samples \(first at index 7\)"):
        evaluate_quality(real, bad, extractor_id="pixels", ref_split="all")
    with pytest.raises(ValueError, match=r"different widths \(3 vs 4\)"):
        evaluate_quality(real, rng.normal(size=(50, 4)), extractor_id="pixels", ref_split="all")
    with pytest.raises(ValueError, match=r"2-D array .* got shape \(50, 3, 1\)"):
        frechet_distance(real, fake[:, :, None])


# ---------------------------------------------------------------------------- registry contract


def test_every_quality_metric_is_registered_with_metadata_and_evaluated():
    public = {"fid": frechet_distance, "fid-inf": fid_infinity, "is": inception_score, "kid": kernel_inception_distance,
              "precision-recall": q.precision_recall_parts, "density-coverage": q.density_coverage_parts}
    # every metric function of the module is registered under its name ...
    for name, fn in public.items():
        assert METRICS.get(name).compute is fn
    # ... and nothing registered from this module is missing from the list above
    ours = {e.name: e for e in METRICS.entries() if getattr(e.obj.compute, "__module__", "") == q.__name__}
    assert set(ours) == set(public)
    rng = np.random.default_rng(22)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    probs = rng.dirichlet(np.ones(4), size=60)
    for name, e in ours.items():
        assert e.obj.family == "quality" and e.obj.needs in ("features", "probs") and e.description
        # evaluate_quality produces every output, by output name and by registered name
        rows = evaluate_quality(real, fake, fake_probs=probs, extractor_id="pixels", ref_split="test", metrics=[name])
        assert [r.metric for r in rows if not r.metric.endswith("_real")] == list(e.obj.outputs)


def test_density_is_target_valued_and_a_collapsed_set_scores_above_one():
    # Naeem et al. 2020: density's ideal is about 1; mode collapse onto dense regions pushes it above 1.
    # A "higher is better" direction would rank that collapsed set above the fresh sample: it must be a target.
    rng = np.random.default_rng(21)
    real = rng.normal(size=(600, 3))
    fresh = rng.normal(size=(600, 3))
    collapsed = 0.05 * rng.normal(size=(600, 3))
    d_fresh, _ = density_coverage(real, fresh)
    d_coll, c_coll = density_coverage(real, collapsed)
    assert d_coll > 1.2 and c_coll < 0.2  # measured: density 1.326, coverage 0.028 (fresh: 0.985, 0.977)
    assert abs(d_fresh - 1.0) < abs(d_coll - 1.0)  # closer to the target wins, though d_coll is larger
    spec = spec_for_output("density")
    assert spec.directions["density"] == 1.0 and spec.target("density") == 1.0
    assert spec.higher_is_better("density") is None
    assert spec.higher_is_better("coverage") is True
    doc = density_coverage.__doc__
    assert "target" in doc and "not* higher-is-better" in doc
