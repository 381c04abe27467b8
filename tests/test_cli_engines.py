"""The CLI engines end to end: `genbench score`, `genbench train`, `genbench report`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genbench.cli import main
from genbench.data import load_dataset


def test_score_npz_against_digits_prints_a_table_with_protocols(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    res = tmp_path / "results"
    ds = load_dataset("digits")
    fake = (ds.val.x.numpy() * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)  # NHWC uint8
    np.savez(tmp_path / "fake.npz", x=fake)
    spec = ["score", "--samples", f"npz:{tmp_path / 'fake.npz'}", "--reference", "digits", "--results", str(res)]
    assert main(spec + ["--families", "quality,coverage"]) == 0
    out = capsys.readouterr().out
    for name in ("fid@domain-digits", "kid@domain-digits", "precision@", "recall@", "density@", "coverage@", "is@"):
        assert name in out, out
    assert "n=180v180" in out  # sample counts are part of every protocol name: equal n (180 samples)
    assert "stored as run score-fake-digits-s0-" in out
    assert main(spec + ["--json", "--families", "quality", "--name", "val split"]) == 0
    doc = json.loads(capsys.readouterr().out)
    fid = next(r for r in doc["metrics"] if r["metric"] == "fid")
    assert fid["value"] > 0 and fid["n"] == {"real": 180, "fake": 180}
    assert doc["name"] == "val split" and doc["run_id"].startswith("score-val_split-digits-s0-")
    # `genbench report` puts the scored rows in the dataset's comparison table
    assert main(["report", "--results", str(res)]) == 0
    table = next(p for p in capsys.readouterr().out.split() if p.endswith("comparison_digits.csv"))
    text = open(table).read()
    assert "val split" in text and "fake" in text


def test_score_bad_samples_is_a_clear_error(tmp_path, capsys):
    bad = np.full((10, 8, 8), np.nan, dtype=np.float32)
    np.savez(tmp_path / "bad.npz", x=bad)
    res = tmp_path / "results"
    assert main(["score", "--samples", f"npz:{tmp_path / 'bad.npz'}", "--reference", "digits", "--results",
                 str(res)]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "NaN" in err
    assert not (res / "runs").exists()


@pytest.mark.timeout(300)
def test_train_writes_a_run_folder_and_store_row(tmp_path, capsys):
    res = tmp_path / "results"
    code = main(["train", "--generator", "vae", "--dataset", "digits", "--seed", "0", "--results", str(res),
                 "--train-set", "steps=20"])
    assert code == 0
    out = capsys.readouterr().out
    assert "status done" in out
    folders = list((res / "runs").iterdir())
    assert len(folders) == 1
    rec = json.loads((folders[0] / "result.json").read_text())
    assert rec["status"] == "done" and rec["generator"] == "vae" and rec["seed"] == 0
    assert (folders[0] / "checkpoints" / "last.pt").is_file()
    from genbench.store import ResultsStore

    assert [r["run_id"] for r in ResultsStore(res).runs()] == [folders[0].name]


def test_report_writes_csv_tables_from_the_store(tmp_path, capsys):
    from genbench.results import MetricResult, Protocol
    from genbench.runs import RunFolder
    from genbench.store import ResultsStore

    res = tmp_path / "results"
    store = ResultsStore(res)
    for gen, control, vals in (("vae", False, (10.0, 12.0)), ("copycat", True, (1.0, 1.0))):
        for seed, v in enumerate(vals):
            rf = RunFolder.open(res, f"{gen}-s{seed}")
            rec = rf.write_result(status="done", metrics=[MetricResult("fid", v, Protocol("fid", space="x",
                                                                                          n={"real": 10,
                                                                                             "fake": 10}, ref="test"))],
                                  generator=gen, dataset="digits", seed=seed, kind="cell", matrix="m",
                                  control=control)
            store.put(rec, path=rf.path)
    assert main(["report", "--results", str(res)]) == 0
    paths = capsys.readouterr().out.split()
    table = next(p for p in paths if p.endswith("comparison_digits.csv"))
    text = open(table).read()
    assert "copycat (control)" in text and "fid@x/n=10v10/ref=test" in text
    assert ",11.0,1.4142135623730951,seeds,2" in text  # mean ± std over the two seeds
