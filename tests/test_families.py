"""The families of issue 18: autoencoders (ae, sparse-ae, contractive-ae, dae), the representation
family, class-conditional models (cgan, cvae) and the conditional family with its controls.

Oracles: autograd's own Jacobian for the contractive penalty, scikit-learn fitted directly for the
GMM choice, the linear probe and CAS; the controls' known answers (a label-shuffled replay is at
chance, a conditional copycat is flagged and scores like real data). The trained tests (marked
slow) use a few hundred steps and the logistic-regression judge of tests/quality_utils.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quality_utils import recognition_rate

from baselines._nets import scale_input
from baselines.autoencoder import AEConfig, Autoencoder, DAEConfig, DenoisingAutoencoder, encoder_jacobian
from baselines.conditional import LabelTable
from genbench.harness import build_generator, train
from genbench.metrics import MetricInputs, evaluate_metrics
from genbench.metrics.conditional import classification_accuracy_score, conditional_accuracy
from genbench.metrics.conditional import evaluate_conditional as _evaluate_conditional
from genbench.metrics.representation import (
    PixelEncoder,
    evaluate_representation,
    linear_probe,
    random_encoder,
    reconstruction_error,
)


def flat(x: torch.Tensor) -> np.ndarray:
    return x.reshape(len(x), -1).numpy()


# --- autoencoders: penalties, code density, chain --------------------------------------------------


def test_contractive_penalty_is_the_squared_frobenius_norm_of_the_encoder_jacobian(digits):
    torch.manual_seed(0)
    ae = Autoencoder(AEConfig(variant="contractive", z_dim=4, contractive_weight=0.5), digits.info)
    x = digits.train.x[:5]
    u = scale_input(x, digits.info)
    jac = encoder_jacobian(ae.encoder, u)
    for i in range(len(x)):
        ref = torch.autograd.functional.jacobian(lambda v: ae.encoder(v.unsqueeze(0)).squeeze(0), u[i])
        assert torch.allclose(jac[i], ref, atol=1e-6)
    pen = ae.penalty(x, ae._enc(x))
    expected = 0.5 * torch.stack([torch.autograd.functional.jacobian(
        lambda v: ae.encoder(v.unsqueeze(0)).squeeze(0), u[i]).pow(2).sum() for i in range(len(x))])
    assert torch.allclose(pen, expected, rtol=1e-5)
    pen.sum().backward()  # differentiable in the weights: the penalty trains the encoder
    assert ae.encoder.net[0].weight.grad.abs().sum() > 0


def test_sparse_penalty_is_the_l1_norm_of_the_code_and_plain_has_none(digits):
    x = digits.train.x[:7]
    sp = Autoencoder(AEConfig(variant="sparse", z_dim=4, sparse_weight=0.3), digits.info)
    z = sp._enc(x)
    assert torch.allclose(sp.penalty(x, z), 0.3 * z.abs().sum(1))
    plain = Autoencoder(AEConfig(z_dim=4), digits.info)
    assert torch.equal(plain.penalty(x, plain._enc(x)), torch.zeros(7))


def test_code_gmm_is_the_count_best_on_validation_codes(digits):
    from sklearn.mixture import GaussianMixture

    torch.manual_seed(0)
    ae = Autoencoder(AEConfig(z_dim=3, gmm_components=(1, 2, 6)), digits.info).eval()
    with pytest.raises(RuntimeError, match="no code GMM"):
        ae.sample(4, seed=0)
    ae._remember(digits.train.x[:500])
    k, ll = ae.fit_code_density(digits.val.x)
    codes_tr, codes_val = ae.encode(digits.train.x[:500]).double().numpy(), ae.encode(digits.val.x).double().numpy()
    val_ll = {c: GaussianMixture(c, covariance_type="full", reg_covar=1e-4, random_state=0).fit(codes_tr)
              .score_samples(codes_val).mean() for c in (1, 2, 6)}
    assert k == max(val_ll, key=val_ll.get) and ll == pytest.approx(val_ll[k], rel=1e-6)
    assert int(ae.gmm_k) == k
    z = ae.sample_codes(20000, torch.Generator().manual_seed(0)).double().numpy()
    ref = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=0).fit(codes_tr)
    # draws follow the stored mixture: its mean and covariance
    assert np.allclose(z.mean(0), ref.weights_ @ ref.means_, atol=0.05 * codes_tr.std())
    assert ae.sample(6, seed=1).shape == (6, 1, 8, 8)


def test_dae_chain_takes_burn_in_and_thinning_steps_and_is_seeded(digits, monkeypatch):
    dae = DenoisingAutoencoder(DAEConfig(chains=5, burn_in=3, thin=2), digits.info)
    calls = []
    orig = dae.reconstruct_params
    monkeypatch.setattr(dae, "reconstruct_params", lambda xt: calls.append(len(xt)) or orig(xt))
    x = dae.sample(10, seed=0)
    # 2 kept states per chain: burn-in 3, the first kept at step 4, the next 2 steps later
    assert calls == [5] * 6 and x.shape == (10, 1, 8, 8)
    assert torch.equal(x, dae.sample(10, seed=0)) and not torch.equal(x, dae.sample(10, seed=1))
    assert 0 <= x.min() and x.max() <= 1


def test_dae_chains_start_from_data_when_asked(digits):
    dae = DenoisingAutoencoder(DAEConfig(chain_start="data", chains=4, burn_in=0, thin=1), digits.info)
    with pytest.raises(RuntimeError, match="no training examples"):
        dae.sample(4, seed=0)
    dae._remember(digits.train.x[:64])
    start = dae._start(4, torch.Generator().manual_seed(0))
    assert all((flat(digits.train.x[:64]) == flat(s[None])).all(1).any() for s in start)


# --- representation ---------------------------------------------------------------------------------


def test_linear_probe_on_pixels_matches_scikit_learn(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr, te = digits.train, digits.test
    out = linear_probe(PixelEncoder(), tr.x, y=tr.y, x_test=te.x, y_test=te.y, per_class=5, seed=0)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(flat(tr.x), tr.y.numpy())
    assert out["probe_acc"].value == pytest.approx((clf.predict(flat(te.x)) == te.y.numpy()).mean())
    assert out["probe_acc_10pc"].n == {"train": 50, "test": len(te.y)}
    assert out["probe_acc_10pc"].value < out["probe_acc"].value


def test_reconstruction_error_and_random_encoder(digits):
    x = digits.test.x[:50]
    assert reconstruction_error(PixelEncoder(shape=(1, 8, 8)), x).value == 0.0
    ae = Autoencoder(AEConfig(z_dim=4), digits.info)
    mse = ((ae.decode(ae.encode(x)) - x) ** 2).mean().item()
    assert reconstruction_error(ae, x).value == pytest.approx(mse, rel=1e-5)
    r1, r2, r3 = (random_encoder(ae, seed=s) for s in (1, 1, 2))
    w = lambda m: m.encoder.net[0].weight  # noqa: E731
    assert torch.equal(w(r1), w(r2)) and not torch.equal(w(r1), w(r3)) and not torch.equal(w(r1), w(ae))


# --- conditional ------------------------------------------------------------------------------------


def test_label_table_recovers_training_labels_and_refuses_strangers(digits):
    table = LabelTable(digits.info, digits)
    assert torch.equal(table.lookup(digits.train.x[:300]), digits.train.y[:300].long())
    with pytest.raises(ValueError, match="not in the training split"):
        table.lookup(digits.test.x[:1] * 0.5 + 0.25)


def test_conditional_metrics_match_their_definitions(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p = np.eye(4)[[0, 1, 2, 3, 3]]
    assert conditional_accuracy(p, labels=[0, 1, 2, 3, 0]).value == 0.8
    tr, te = digits.train, digits.test
    cas = classification_accuracy_score(flat(te.x), flat(tr.x), fake_labels=tr.y, real_labels=te.y).value
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(flat(tr.x), tr.y.numpy())
    assert cas == pytest.approx((clf.predict(flat(te.x)) == te.y.numpy()).mean())


@pytest.fixture(scope="module")
def replay_controls(digits):
    return {n: build_generator(n, digits, seed=0)[0] for n in ("conditional-copycat", "label-shuffled")}


def evaluate_conditional(gen, ds, *, n, seed):
    """The conditional rows with the digits domain classifier, as evaluate_model wires them."""
    from genbench.features import extract, get_extractor

    ext = get_extractor("domain:digits")
    return _evaluate_conditional(gen, ds, n=n, seed=seed, class_probs=lambda x: extract(ext, x)["probs"],
                                 features=lambda x: extract(ext, x)["features"], space=ext.id)


def rows_by_metric(rows):
    return {r.metric: r for r in rows}


def test_per_class_fid_is_the_mean_of_each_class_fid_at_equal_n():
    from genbench.metrics.conditional import per_class_fid
    from genbench.metrics.quality import frechet_distance

    rng = np.random.default_rng(0)
    yr, yf = np.arange(300) % 3, np.arange(90) % 3  # 100 real and 30 generated rows per class
    real = rng.normal(size=(300, 4)) + 3.0 * yr[:, None]
    fake = rng.normal(size=(90, 4)) + 3.0 * yf[:, None] + 0.5
    m = per_class_fid(real, fake, yr, yf, seed=1)
    # the same subsamples by hand: each class's real rows drawn down to its 30 generated rows
    sub = np.random.default_rng(1)
    want = []
    for c in range(3):
        ir, jf = np.flatnonzero(yr == c), np.flatnonzero(yf == c)
        r = real[np.sort(sub.choice(ir, 30, replace=False))]
        f = fake[np.sort(sub.choice(jf, 30, replace=False))]
        want.append(frechet_distance(r, f))
    assert m.value == pytest.approx(np.mean(want), rel=1e-12) and m.std == pytest.approx(np.std(want, ddof=1))
    assert m.params["n_per_class"] == {"0": 30, "1": 30, "2": 30} and m.std_kind == "classes"


def test_per_class_metrics_see_swapped_classes_that_pooled_fid_cannot():
    from genbench.metrics.conditional import per_class_fid, per_class_precision_recall
    from genbench.metrics.quality import frechet_distance

    rng = np.random.default_rng(2)
    y = np.arange(600) % 3
    real = rng.normal(size=(600, 3)) + 4.0 * np.eye(3)[y]
    fake = rng.normal(size=(600, 3)) + 4.0 * np.eye(3)[y]
    swapped = (y + 1) % 3  # every sample is labelled with the wrong class: the pooled set is still right
    assert frechet_distance(real, fake) < 0.1
    assert per_class_fid(real, fake, y, y).value < 0.2 < 10 < per_class_fid(real, fake, y, swapped).value
    good, bad = per_class_precision_recall(real, fake, y, y), per_class_precision_recall(real, fake, y, swapped)
    assert good["precision_per_class"].value > 0.8 > 0.05 > bad["precision_per_class"].value
    assert good["recall_per_class"].value > 0.8 > 0.05 > bad["recall_per_class"].value


def test_label_shuffled_control_scores_at_chance(digits, replay_controls):
    rows = rows_by_metric(evaluate_conditional(replay_controls["label-shuffled"], digits, n=1000, seed=0))
    assert abs(rows["conditional_accuracy"].value - 0.1) < 0.04
    assert abs(rows["cas"].value - 0.1) < 0.08 and rows["cas_real"].value > 0.9
    # per class, its samples are another class's images: far from the ceiling of real data
    assert rows["fid_per_class"].value > 5 * rows["fid_per_class_real"].value
    assert rows["precision_per_class"].value < 0.5 < rows["precision_per_class_real"].value


def test_conditional_copycat_is_flagged_and_scores_like_real_data_on_cas(digits, replay_controls):
    cc = replay_controls["conditional-copycat"]
    labels = torch.arange(200) % 10
    x = cc.sample(200, seed=0, labels=labels)
    assert torch.equal(LabelTable(digits.info, digits).lookup(x), labels)  # the requested classes, replayed
    rows = rows_by_metric(evaluate_conditional(cc, digits, n=1000, seed=0))
    assert rows["conditional_accuracy"].value > 0.95
    assert abs(rows["cas"].value - rows["cas_real"].value) < 0.03
    # replayed training images of the requested class: per class as close to the test rows as real data
    assert rows["fid_per_class"].value < 1.5 * rows["fid_per_class_real"].value
    inputs = MetricInputs("pixels", fake=flat(x), train=flat(digits.train.x), heldout=flat(digits.test.x), ref="train",
                          heldout_split="test")
    copy = rows_by_metric(evaluate_metrics(inputs, metrics=["copy-rate"], family="overfitting"))["copy-rate"]
    assert copy.params["flagged"] and copy.value > 0.9


# --- trained: beat the controls (slow) --------------------------------------------------------------

SHORT = {"steps": 500, "val_every": 250}


@pytest.fixture(scope="module")
def rate_independent_pixels(digits):
    ip, _ = build_generator("independent-pixels", digits, seed=0)
    return recognition_rate(ip.sample(1000, seed=1))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ae", "sparse-ae", "contractive-ae", "dae"])
def test_autoencoders_beat_independent_pixels(name, digits, rate_independent_pixels):
    res = train(name, digits, seed=0, run=None, train_overrides=SHORT)
    rate = recognition_rate(res.model.sample(1000, seed=1))
    assert rate > max(0.1, 4 * rate_independent_pixels), f"{name}: {rate:.3f} vs {rate_independent_pixels:.3f}"
    if name != "dae":
        rows = rows_by_metric(evaluate_representation(res.model, digits, seed=0))
        # trained codes are more linearly separable than a random encoder's of the same shape
        assert rows["probe_acc"].value > rows["probe_acc_random"].value + 0.03
        assert rows["rec_mse"].value < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cgan", "cvae"])
def test_conditional_models_beat_controls(name, digits, rate_independent_pixels, replay_controls):
    res = train(name, digits, seed=0, run=None, train_overrides={"steps": 1000, "val_every": 250})
    rate = recognition_rate(res.model.sample(1000, seed=1))
    assert rate > max(0.1, 4 * rate_independent_pixels), f"{name}: {rate:.3f} vs {rate_independent_pixels:.3f}"
    mine = rows_by_metric(evaluate_conditional(res.model, digits, n=1000, seed=0))
    ignores = rows_by_metric(evaluate_conditional(replay_controls["label-shuffled"], digits, n=1000, seed=0))
    assert mine["conditional_accuracy"].value > ignores["conditional_accuracy"].value + 0.5
    assert mine["cas"].value > ignores["cas"].value + 0.4


@pytest.mark.slow
def test_bigan_beats_independent_pixels_and_its_encoder_beats_a_random_one(digits, rate_independent_pixels):
    res = train("bigan", digits, seed=0, run=None)  # the default 2000 steps: at 1000 its samples are still noisy
    rate = recognition_rate(res.model.sample(1000, seed=1))
    assert rate > max(0.1, 4 * rate_independent_pixels), f"bigan: {rate:.3f} vs {rate_independent_pixels:.3f}"
    rows = rows_by_metric(evaluate_representation(res.model, digits, seed=0))
    assert rows["probe_acc"].value > rows["probe_acc_random"].value + 0.03


def test_evaluate_model_runs_the_new_families_when_asked(digits, replay_controls):
    from genbench.evaluate import evaluate_model
    from genbench.matrix import EvalConfig

    ev = EvalConfig(n_samples=200, families=("representation", "conditional"), device="cpu")
    cond = {r.metric for r in evaluate_model(replay_controls["conditional-copycat"], digits, ev, seed=0).metrics}
    assert {"conditional_accuracy", "cas", "cas_real", "fid_per_class", "precision_per_class", "recall_per_class",
            "fid_per_class_real"} <= cond and not any(m.startswith("probe") for m in cond)
    ae = Autoencoder(AEConfig(z_dim=4), digits.info)
    ae._remember(digits.train.x[:300])
    ae.fit_code_density(digits.val.x)
    rep = {r.metric for r in evaluate_model(ae, digits, ev, seed=0).metrics}
    assert {"probe_acc", "probe_acc_10pc", "rec_mse", "probe_acc_pixels", "probe_acc_random"} <= rep
    assert "cas" not in rep
    # not asked for: not computed
    plain = evaluate_model(ae, digits, EvalConfig(n_samples=200, families=("coverage",), device="cpu"), seed=0)
    assert not any(r.metric.startswith("probe") for r in plain.metrics)
