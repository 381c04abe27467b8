"""Comparison tables: models x metrics, one column per protocol, controls as reference rows."""

from __future__ import annotations

from genbench.reports.tables import comparison_tables, format_comparison, load_frame, metric_family
from genbench.results import MetricResult, Protocol
from genbench.runs import RunFolder
from genbench.store import ResultsStore


def _put(res, store, run_id, gen, seed, metrics, control=False, dataset="digits"):
    rf = RunFolder.open(res, run_id)
    rec = rf.write_result(status="done", metrics=metrics, generator=gen, dataset=dataset, seed=seed, kind="cell",
                          matrix="m", control=control)
    store.put(rec, path=rf.path)


def test_column_key_drops_only_per_model_tuned_parameters_and_the_seed():
    from genbench.results import Protocol

    p = Protocol("parzen", space="pixels", n={"samples": 10000}, ref="test", tuned={"sigma": 0.167}, seed=3)
    assert str(p) == "parzen@pixels/n=10000/ref=test/sigma=0.167/seed=3"
    assert p.column == "parzen@pixels/n=10000/ref=test"
    g = Protocol("gmm", space="pixels", n={"samples": 10}, ref="train", fixed={"cov": "full"}, tuned={"components": 5})
    assert g.column == "gmm@pixels/n=10/ref=train/cov=full"
    k = Protocol("kid", space="d", n={"real": 359, "fake": 10}, ref="test", fixed={"m": 359})
    assert k.column == str(k) == "kid@d/n=359v10/ref=test/m=359"
    assert metric_family("parzen-gap") == "likelihood" and metric_family("val_elbo") == "training"


def test_models_by_metrics_with_controls_last_and_seed_spread(tmp_path):
    res = tmp_path / "r"
    store = ResultsStore(res)
    for seed, (sig, v) in enumerate(((0.1, 20.0), (0.2, 22.0))):
        _put(res, store, f"vae-{seed}", "vae", seed, [
            MetricResult("parzen", v, Protocol("parzen", space="pixels", n={"samples": 10}, ref="test",
                                               tuned={"sigma": sig}), std=1.0),
            MetricResult("parzen", v + 1, Protocol("parzen", space="pixels", n={"samples": 10}, ref="train",
                                                   tuned={"sigma": sig}), std=1.0),
            MetricResult("fid", 3.0 + seed, Protocol("fid", space="dom", n={"real": 5, "fake": 10}, ref="test")),
        ])
    fid10 = Protocol("fid", space="dom", n={"real": 5, "fake": 10}, ref="test")
    _put(res, store, "copy-0", "copycat", 0, [MetricResult("fid", 0.5, fid10)], control=True)
    _put(res, store, "other-proto", "gan", 0, [MetricResult("fid", 9.0, fid10.with_(n={"real": 5, "fake": 99}))])
    tables = comparison_tables(load_frame(res))["digits"]
    quality, legend = tables["quality"]
    assert list(quality.index) == ["gan", "vae", "copycat (control)"]
    # different sample counts are different protocols: two fid columns, never one
    assert sorted(legend.values()) == ["fid@dom/n=5v10/ref=test", "fid@dom/n=5v99/ref=test"]
    lik, legend = tables["likelihood"]
    assert set(legend) == {"parzen[ref=test]", "parzen[ref=train]"}
    assert lik.loc["vae", "parzen[ref=test]"] == "21 ± 1.4"  # mean ± std over the two seeds, sigma tuned per seed
    text = format_comparison(load_frame(res))
    assert "=== digits ===" in text and "copycat (control)" in text and "parzen@pixels/n=10/ref=test" in text
