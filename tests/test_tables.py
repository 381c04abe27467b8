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


# ---------------------------------------------------------------------------------------------
# rows are model configurations; failures, filters and CSV columns


def _cell_record(res, store, run_id, *, name, seed, metrics=(), label="", model=None, train=None, status="done",
                 error=None, matrix="m", dataset="digits", control=False, timings=None):
    """A run as the matrix runner records it: config = the Cell dict with its generator entry."""
    gen = {"name": name, "label": label, "model": model or {}, "train": train or {}}
    rf = RunFolder.open(res, run_id)
    rec = rf.write_result(status=status, error=error, metrics=list(metrics), generator=label or name,
                          family=name, dataset=dataset, seed=seed, kind="cell", matrix=matrix, cell_id=run_id,
                          control=control, timings=timings or {"train_s": 1.5, "total_s": 2.0},
                          config={"matrix": matrix, "cell_id": run_id, "generator": gen, "dataset": dataset,
                                  "seed": seed, "evaluation": {"n_samples": 10}})
    store.put(rec, path=rf.path)
    return rec


FID = Protocol("fid", space="dom", n={"real": 5, "fake": 10}, ref="test")
SECS = Protocol("train-seconds", space="digits", fixed={"device": "cpu"})


def _two_budgets(res):
    """Two unlabelled vae entries with different training budgets, two seeds each, one failed seed."""
    store = ResultsStore(res)
    for seed, v in ((0, 100.0), (1, 110.0)):
        _cell_record(res, store, f"vae-a-s{seed}", name="vae", seed=seed, train={"steps": 20}, metrics=[
            MetricResult("fid", v, FID), MetricResult("train_seconds", 3.0, SECS, unit="s")])
    for seed, v in ((0, 10.0), (1, 12.0)):
        _cell_record(res, store, f"vae-b-s{seed}", name="vae", seed=seed, train={"steps": 400}, metrics=[
            MetricResult("fid", v, FID), MetricResult("train_seconds", 60.0, SECS, unit="s")])
    _cell_record(res, store, "vae-b-s2", name="vae", seed=2, train={"steps": 400}, status="failed",
                 error="RuntimeError: loss is NaN at step 17")
    _cell_record(res, store, "copycat-s0", name="copycat", seed=0, control=True,
                 metrics=[MetricResult("fid", 0.5, FID)])
    return store


def test_configurations_with_one_label_are_separate_rows_and_only_seeds_are_averaged(tmp_path):
    res = tmp_path / "r"
    _two_budgets(res)
    df = load_frame(res)
    quality, legend = comparison_tables(df)["digits"]["quality"]
    assert list(quality.index) == ["vae [steps=20]", "vae [steps=400]", "copycat (control)"]
    # the mean of the two 20-step seeds, and of the two 400-step seeds: never the mean of all four
    assert quality.loc["vae [steps=20]", "fid"] == "105 ± 7.1"
    assert quality.loc["vae [steps=400]", "fid"] == "11 ± 1.4"
    assert quality.loc["vae [steps=400]", "seeds"] == "2 (+1 failed)"
    assert quality.loc["vae [steps=20]", "seeds"] == "2"
    # wall-clock time is not a comparison column in any table
    tables = comparison_tables(df)["digits"]
    assert all("train_seconds" not in t.columns for t, _ in tables.values())
    assert not any("seconds" in key for _, leg in tables.values() for key in leg.values())


def test_failed_cells_are_shown_with_their_error(tmp_path):
    res = tmp_path / "r"
    store = _two_budgets(res)
    _cell_record(res, store, "gan-s0", name="gan", seed=0, status="failed", error="ValueError: bad lr\nmore")
    df = load_frame(res)
    quality, _ = comparison_tables(df)["digits"]["quality"]
    assert quality.loc["gan", "seeds"] == "0 (+1 failed)" and quality.loc["gan", "fid"] == "failed"
    text = format_comparison(df)
    assert "FAILED cells" in text
    assert "gan on digits, seed 0 (gan-s0): ValueError: bad lr" in text
    assert "vae [steps=400] on digits, seed 2 (vae-b-s2): RuntimeError: loss is NaN at step 17" in text


def test_cell_ids_keep_a_matrix_s_cells_whichever_run_computed_them(tmp_path):
    res = tmp_path / "r"
    store = ResultsStore(res)
    # cell c1 was computed by an earlier matrix "old" and reused by "new"; c2 by "new"; c3 belongs to neither
    _cell_record(res, store, "c1", name="vae", seed=0, matrix="old", metrics=[MetricResult("fid", 1.0, FID)])
    _cell_record(res, store, "c2", name="gan", seed=0, matrix="new", metrics=[MetricResult("fid", 2.0, FID)])
    _cell_record(res, store, "c3", name="aae", seed=0, matrix="new", metrics=[MetricResult("fid", 3.0, FID)])
    by_ids = comparison_tables(load_frame(res, cell_ids=["c1", "c2"]))["digits"]["quality"][0]
    assert list(by_ids.index) == ["gan", "vae"]
    assert list(comparison_tables(load_frame(res), cell_ids={"c1", "c3"})["digits"]["quality"][0].index) == [
        "aae", "vae"]
    by_name = comparison_tables(load_frame(res, matrix="new"))["digits"]["quality"][0]
    assert list(by_name.index) == ["aae", "gan"]  # the matrix name alone loses the reused cell c1


def test_wide_csv_keeps_value_uncertainty_and_seed_count_in_numeric_columns(tmp_path):
    from genbench.reports.tables import wide_csv_frames

    res = tmp_path / "r"
    _two_budgets(res)
    wide = wide_csv_frames(load_frame(res))["digits"].set_index("model")
    key = "fid@dom/n=5v10/ref=test"
    assert wide.loc["vae [steps=20]", key] == 105.0
    assert abs(wide.loc["vae [steps=20]", f"{key}_std"] - 7.0710678) < 1e-6
    assert wide.loc["vae [steps=20]", f"{key}_std_kind"] == "seeds"
    assert wide.loc["vae [steps=400]", f"{key}_n_seeds"] == 2
    assert wide.loc["vae [steps=400]", "n_failed"] == 1 and "loss is NaN" in wide.loc["vae [steps=400]", "errors"]
    assert wide[key].dtype.kind == "f" and wide[f"{key}_std"].dtype.kind == "f"
    assert not [c for c in wide.columns if "seconds" in c]


def test_row_labels_tell_configurations_apart():
    from genbench.reports.tables import row_labels

    gens = {
        "a": {"name": "vae", "label": "", "model": {"latent": 2}, "train": {"steps": 20}},
        "b": {"name": "vae", "label": "", "model": {"latent": 2}, "train": {"steps": 400}},
        "c": {"name": "vae", "label": "", "model": {}, "train": {"steps": 400}},
        "d": {"name": "gan", "label": "x", "model": {}, "train": {}},
        "e": {"name": "aae", "label": "x", "model": {}, "train": {}},
        "f": {"name": "pixelcnn", "label": "", "model": {}, "train": {}},
    }
    assert row_labels(gens) == {"a": "vae [latent=2, steps=20]", "b": "vae [latent=2, steps=400]",
                                "c": "vae [latent=default, steps=400]", "d": "x [gan]", "e": "x [aae]", "f": "pixelcnn"}


# ---------------------------------------------------------------------------------------------
# write_report: the store must exist, and the output folder holds only the new report


def test_report_of_a_path_without_store_is_an_error_and_creates_nothing(tmp_path):
    import pytest

    from genbench.reports.html import write_report
    from genbench.reports.tables import NoResultsError

    with pytest.raises(NoResultsError, match="no results store"):
        write_report(tmp_path / "nothing", html=False)
    assert not (tmp_path / "nothing").exists()


def test_a_deleted_or_empty_index_is_rebuilt_from_the_run_folders_and_said(tmp_path):
    from genbench.reports.html import write_report

    res = tmp_path / "r"
    _two_budgets(res)
    (res / "index.sqlite").unlink()
    for p in res.glob("index.sqlite-*"):
        p.unlink()
    files = write_report(res, out_dir=tmp_path / "out", html=False)
    assert "vae [steps=400]" in (tmp_path / "out" / "comparison.txt").read_text()
    assert {p.name for p in files} >= {"results_long.csv", "comparison_digits.csv", "runs.csv", "README.md"}
    # an index that exists but holds nothing (e.g. created by mistake) is rebuilt too
    (res / "index.sqlite").unlink()
    ResultsStore(res)
    from genbench.reports.tables import open_store

    store, notes = open_store(res)
    assert notes and "was empty: rebuilt it from 6 run folder(s)" in notes[0]
    assert len(store.runs()) == 6


def test_a_new_report_replaces_the_old_one_and_leaves_no_stale_files(tmp_path):
    import pytest

    from genbench.reports.html import write_report

    res = tmp_path / "r"
    store = _two_budgets(res)
    _cell_record(res, store, "ring-0", name="gan", seed=0, dataset="mixture-ring",
                 metrics=[MetricResult("fid", 1.0, FID)])
    out = tmp_path / "out"
    write_report(res, out_dir=out, html=False)
    assert (out / "comparison_mixture-ring.csv").is_file()
    write_report(res, out_dir=out, html=False, matrix="m", cell_ids=["vae-a-s0", "vae-a-s1"])
    assert not (out / "comparison_mixture-ring.csv").exists()  # not from this report: gone
    assert "vae [steps=400]" not in (out / "comparison.txt").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no staging folders left
    # a folder with files a report did not write is never replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match="did not write"):
        write_report(res, out_dir=mine, html=False)
    assert (mine / "thesis.tex").read_text() == "x"


def test_long_csv_has_protocol_fields_as_columns(tmp_path):
    import pandas as pd

    from genbench.reports.html import write_report

    res = tmp_path / "r"
    store = ResultsStore(res)
    _cell_record(res, store, "v0", name="vae", seed=0, metrics=[
        MetricResult("parzen", -5.0, Protocol("parzen", space="pixels", n={"samples": 10, "test": 4}, ref="test",
                                              tuned={"sigma": 0.2}, seed=7), std=0.5, std_kind="stderr",
                     kind="estimate", unit="nats")])
    write_report(res, out_dir=tmp_path / "o", html=False)
    long = pd.read_csv(tmp_path / "o" / "results_long.csv")
    row = long.iloc[0]
    assert (row["metric"], row["space"], row["ref"], row["kind"], row["unit"]) == (
        "parzen", "pixels", "test", "estimate", "nats")
    assert (row["value"], row["uncertainty"], row["uncertainty_kind"], row["eval_seed"]) == (-5.0, 0.5, "stderr", 7)
    assert row["tuned"] == '{"sigma": 0.2}' and row["column"] == "parzen@pixels/n=samples:10,test:4/ref=test"


def test_cells_of_a_matrix_without_a_result_are_named(tmp_path):
    from genbench.reports.tables import write_report

    res = tmp_path / "r"
    _two_budgets(res)
    said = []
    write_report(res, out_dir=tmp_path / "o", html=False, cell_ids=["vae-a-s0", "not-run-yet"], log=said.append)
    assert said == ["1 of 2 cells have no result yet (not run, or still running): not-run-yet"]
    assert "> Note: 1 of 2 cells have no result yet" in (tmp_path / "o" / "README.md").read_text()


def test_a_configuration_with_numbers_in_one_family_only_is_still_a_row_of_the_csv(tmp_path):
    from genbench.reports.tables import wide_csv_frames

    res = tmp_path / "r"
    store = ResultsStore(res)
    _cell_record(res, store, "q", name="vae", seed=0, metrics=[MetricResult("fid", 1.0, FID)])
    _cell_record(res, store, "l", name="pixelcnn", seed=0, metrics=[
        MetricResult("exact-loglik", -80.0, Protocol("exact-loglik", n={"test": 5}, ref="test"), kind="exact")])
    wide = wide_csv_frames(load_frame(res))["digits"]
    assert list(wide["model"]) == ["pixelcnn", "vae"]
    assert wide.set_index("model").loc["pixelcnn", "exact-loglik/n=5/ref=test"] == -80.0


def test_real_vs_real_results_are_one_reference_row_under_the_model_columns(tmp_path):
    res = tmp_path / "r"
    store = ResultsStore(res)
    fid = Protocol("fid", space="dom", n={"real": 180, "fake": 180}, ref="test", fixed={"subsamples": 5}, seed=0)
    real = fid.with_(metric="fid_real")
    for run_id, gen, v in (("vae-0", "vae", 4.0), ("gan-0", "gan", 6.0)):
        _put(res, store, run_id, gen, 0, [
            MetricResult("fid", v, fid, std=0.5, std_kind="subsamples"),
            MetricResult("fid_real", 1.25, real, std=0.2, std_kind="subsamples", params={"real_vs_real": "train"}),
        ])
    quality, legend = comparison_tables(load_frame(res))["digits"]["quality"]
    # one fid column, and the real-vs-real numbers as a reference row under it (not a fid_real column)
    assert list(legend) == ["fid"] and legend["fid"] == fid.column
    assert list(quality.index) == ["gan", "vae", "real data (train vs reference)"]
    assert quality.loc["real data (train vs reference)", "fid"] == "1.25 ± 0.2"


def test_representation_and_conditional_rows_land_in_their_family_tables(tmp_path):
    """Rows of the evaluator for these families (reference rows included) group by the family their spec
    names; cas_real, the same spec on real labelled rows, is the real-data row under the cas column."""
    from test_metrics_common import _inputs

    from genbench.metrics import evaluate_metrics

    rows = evaluate_metrics(_inputs("encoder"), family="representation")  # the probe and reconstruction
    rows += evaluate_metrics(_inputs("encoder"), metrics=["linear-probe"], suffix="_pixels", note="reference")
    rows += evaluate_metrics(_inputs("labelled_probs"), family="conditional")
    rows += evaluate_metrics(_inputs("labelled"), family="conditional")
    # (the ceiling trains on real rows, as many as the samples; here another draw of the same classes)
    rows += evaluate_metrics(_inputs("labelled", seed=1), metrics=["cas"], suffix="_real", note="reference")
    assert {r.params["metric_family"] for r in rows} == {"representation", "conditional"}
    res = tmp_path / "r"
    _put(res, ResultsStore(res), "m-0", "m", 0, rows)
    tables = comparison_tables(load_frame(res))["digits"]
    assert "other" not in tables
    _, legend = tables["representation"]
    assert set(legend) == {"probe_acc", "probe_acc_10pc", "rec_mse", "probe_acc_pixels", "probe_acc_10pc_pixels"}
    cond, legend = tables["conditional"]
    assert set(legend) == {"conditional_accuracy", "cas", "fid_per_class", "precision_per_class", "recall_per_class"}
    assert list(cond.index)[0] == "m" and list(cond.index)[1].startswith("real data")


# ---------------------------------------------------------------------------------------------
# saying when n is too small to separate the models


def _separation_store(res):
    """Three models and a control at n=180, one seed each, with the real-vs-real row: fid far apart, kid within
    the subsample spread, precision without any ±, recall apart by its own ± but within the real-vs-real row's."""
    store = ResultsStore(res)

    def proto(metric, **kw):
        return Protocol(metric, space="dom", n={"real": 180, "fake": 180}, ref="test", fixed={"subsamples": 5}, **kw)

    cells = {"vae": (10.0, 0.10, 0.9, 0.80), "gan": (20.0, 0.12, 0.5, 0.82), "aae": (30.0, 0.13, 0.7, 0.81)}
    for gen, (fid, kid, prec, rec) in cells.items():
        rows = [MetricResult("fid", fid, proto("fid"), std=0.5, std_kind="subsamples", higher_is_better=False),
                MetricResult("kid", kid, proto("kid"), std=0.05, std_kind="subsamples", higher_is_better=False),
                MetricResult("precision", prec, proto("precision"), higher_is_better=True),
                MetricResult("recall", rec, proto("recall"), std=0.005, std_kind="subsamples", higher_is_better=True),
                MetricResult("recall_real", 0.85, proto("recall_real"), std=0.05, std_kind="subsamples",
                             higher_is_better=True, params={"real_vs_real": "train"}),
                # the real data's own score, the same in every model's row: it measures no model
                MetricResult("vendi_real", 6.868, Protocol("vendi_real", space="dom", n={"real": 180}, ref="test"),
                             std=0.08, std_kind="subsamples", higher_is_better=True)]
        _cell_record(res, store, f"{gen}-0", name=gen, seed=0, metrics=rows)
    # a control inside the spread of the best is a reference, never marked
    _cell_record(res, store, "copycat-0", name="copycat", seed=0, control=True,
                 metrics=[MetricResult("kid", 0.101, proto("kid"), std=0.05, std_kind="subsamples",
                                       higher_is_better=False)])
    return store


def test_cells_within_the_combined_spread_of_the_best_are_marked_and_far_ones_are_not(tmp_path):
    from genbench.reports.tables import TIE_RULE, build_tables

    res = tmp_path / "r"
    _separation_store(res)
    df = load_frame(res)
    (t,) = build_tables(df)["digits"]
    col = {c.label: c.key for c in t.columns}
    val = {(r.label, c.label): t.values[(r.key, c.key)] for r in t.rows for c in t.columns
           if (r.key, c.key) in t.values}
    # fid: 10 vs 20 vs 30, each ± 0.5: separated, nothing marked, no note
    assert [val[(m, "fid")].tied for m in ("vae", "gan", "aae")] == [False, False, False]
    assert t.separates[col["fid"]] is True and col["fid"] not in t.separation
    # kid: 0.12 - 0.10 = 0.02 <= sqrt(0.05^2 + 0.05^2): tied with the best, and so is every model: a note
    assert (val[("vae", "kid")].tied, val[("gan", "kid")].tied, val[("aae", "kid")].tied) == (False, True, True)
    assert val[("vae", "kid")].best and not val[("gan", "kid")].best
    assert t.separation[col["kid"]] == ("at n=180 kid does not separate these models (differences within the "
                                        "subsample spread)")
    assert val[("copycat (control)", "kid")].tied is None  # controls are references
    # precision has no ±: never marked, whatever the spread
    assert all(val[(m, "precision")].tied is None for m in ("vae", "gan", "aae"))
    assert col["precision"] not in t.separates and col["precision"] not in t.separation
    # a column with one value for every model measures none of them: not judged
    assert all(val[(m, "vendi_real")].tied is None for m in ("vae", "gan", "aae"))
    assert col["vendi_real"] not in t.separates and col["vendi_real"] not in t.separation
    # recall: 0.82 vs 0.80 is 2.8 of its own combined ± (not tied), but the models' range 0.02 is below the
    # real-vs-real row's ± 0.05: the protocol cannot tell these models apart either
    assert val[("vae", "recall")].tied is False and val[("gan", "recall")].best
    assert t.separation[col["recall"]] == ("at n=180 recall does not separate these models (the models' range "
                                           "0.02 is below the real-vs-real row's ± 0.05)")
    # the printed table: ≈ on the tied cells, the rule and the notes under the table
    quality, _ = comparison_tables(df)["digits"]["quality"]
    assert quality.loc["gan", "kid"] == "≈0.12 ± 0.05" and quality.loc["vae", "kid"] == "0.1 ± 0.05"
    assert quality.loc["gan", "fid"] == "20 ± 0.5" and quality.loc["gan", "precision"] == "0.5"
    assert quality.loc["copycat (control)", "kid"] == "0.101 ± 0.05"
    text = format_comparison(df)
    assert TIE_RULE in text and "at n=180 kid does not separate these models" in text
    assert "fid does not separate" not in text and "precision does not separate" not in text


def test_separation_reaches_the_csv_markdown_and_html(tmp_path):
    import pandas as pd

    from genbench.reports.html import render_html, render_markdown
    from genbench.reports.tables import wide_csv_frames

    res = tmp_path / "r"
    _separation_store(res)
    df = load_frame(res)
    wide = wide_csv_frames(df)["digits"].set_index("model")
    kid = "kid@dom/n=180v180/ref=test/subsamples=5"
    fid, prec = kid.replace("kid", "fid"), kid.replace("kid", "precision")
    assert wide[f"{kid}_tied_with_best"].to_dict() == {"aae": True, "gan": True, "vae": False,
                                                        "copycat (control)": None,
                                                        "real data (train vs reference)": None}
    assert set(wide[f"{kid}_separates_models"]) == {False} and set(wide[f"{fid}_separates_models"]) == {True}
    assert not wide[f"{fid}_tied_with_best"].fillna(False).any()
    assert wide[f"{prec}_tied_with_best"].isna().all() and wide[f"{prec}_separates_models"].isna().all()
    # the CSV round trip keeps them readable
    back = pd.read_csv(pd.io.common.StringIO(wide.reset_index().to_csv(index=False))).set_index("model")
    assert back.loc["gan", f"{kid}_tied_with_best"] == True  # noqa: E712 (a CSV bool, read back as object)
    md = render_markdown(df, df.attrs["runs"], title="t")
    assert "≈0.12 ± 0.05" in md and "- **kid**: at n=180 kid does not separate these models" in md
    html = render_html(res, df, df.attrs["runs"])
    assert 'class=" tied"' in html and "at n=180 kid does not separate these models" in html
    assert "|difference| &lt;= 1 x sqrt" in html and "|difference| <= 1" not in html  # escaped
