"""`genbench score` on external generators and sample sets: every input kind scored on digits through the
matrix's road and stored as a run beside a matrix run; identity with the matrix; untrusted checkpoints."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
import score_helpers as H
import torch

from genbench.cli import main
from genbench.loading import LoadError, load_generator
from genbench.matrix import Block, EvalConfig, GeneratorEntry, Matrix
from genbench.scoring import score, score_run
from genbench.store import ResultsStore

# small settings: a few hundred samples, a few importance samples, a short test split
EV = EvalConfig(n_samples=300, families=("quality", "likelihood", "overfitting", "coverage"), iwae_k=8, n_test=100,
                gmm_components=(1, 2), device="cpu")
FAST = dict(n_samples=300, iwae_k=8, n_test=100, gmm_components=(1, 2), device="cpu")


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    # one feature / domain-classifier cache for the module: the matrix cell and the scores must share it
    with pytest.MonkeyPatch.context() as mp:
        d = tmp_path_factory.mktemp("cache")
        mp.setenv("GENBENCH_CACHE", str(d))
        yield d


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory, cache):
    """A 1-cell matrix (a tiny VAE trained for a few steps) in a results store."""
    from genbench.runner import run_matrix

    res = tmp_path_factory.mktemp("results")
    m = Matrix("tiny", (Block(("digits",), (GeneratorEntry("vae", train={"steps": 40}),), (0,), EV),))
    summary = run_matrix(m, results=res, progress_bar=False)
    assert not summary.failed, summary.failed
    cell = m.cells()[0]
    return res, res / "runs" / cell.cell_id, json.loads((res / "runs" / cell.cell_id / "result.json").read_text())


def _frame(res):
    return ResultsStore(res).to_frame()


def _nothing_stored(res):
    empty = not (res / "runs").exists() or not any((res / "runs").iterdir())
    return empty and not (res / ".staging").exists(), ResultsStore(res).runs()


def test_identity_with_the_matrix_cell_and_checkpoint_inputs(matrix_run):
    """Scoring the cell's run folder (and its checkpoint file) with the cell's EvalConfig and seed gives every
    number of the cell's evaluation exactly; the rows sit in the store beside the cell."""
    res, folder, cell = matrix_run
    out = score_run(generator=str(folder), reference="digits", evaluation=EV, seed=0, results=res, name="vae-ckpt")
    cell_values = {m["protocol"]: m["value"] for m in cell["metrics"]}
    assert len(out.rows) > 20
    for r in out.rows:
        assert r.protocol.__str__() in cell_values, r.protocol
        assert r.value == cell_values[str(r.protocol)], (str(r.protocol), r.value, cell_values[str(r.protocol)])
    metrics = {r.metric for r in out.rows}
    assert {"fid", "copy-rate", "iwae", "parzen", "gmm"} <= metrics
    # the checkpoint file itself (a genbench checkpoint, read with weights_only) gives the same numbers
    best = folder / "checkpoints" / "best.pt"
    ck = score_run(generator=str(best), reference="digits", evaluation=EV, seed=0, results=res, name="vae-best")
    assert [(str(r.protocol), r.value) for r in ck.rows] == [(str(r.protocol), r.value) for r in out.rows]
    df = _frame(res)
    kinds = df.groupby("generator")["kind"].first().to_dict()
    assert kinds == {"vae": "cell", "vae-ckpt": "score", "vae-best": "score"}
    rec = json.loads((out.path / "result.json").read_text())
    assert rec["kind"] == "score" and rec["family"] == "vae" and rec["status"] == "done" and rec["seed"] == 0
    for k in ("samples", "sample_grid", "nn_gallery"):
        assert (out.path / rec["artifacts"][k]).is_file()
    assert rec["config"]["source"]["format"] == "genbench-run" and rec["config"]["source"]["files"]
    assert {"genbench", "packages", "device"} <= set(rec["provenance"])


def test_sample_set_npz_is_stored_beside_the_matrix(matrix_run, tmp_path, digits):
    res, _, _ = matrix_run
    x = (digits.val.x * 255).round().to(torch.uint8).numpy()
    np.savez(tmp_path / "val.npz", x=x)
    out = score_run(f"npz:{tmp_path / 'val.npz'}", "digits", results=res, name="<b>val</b>")
    df = _frame(res)
    mine = df[df.generator == "<b>val</b>"]
    assert set(mine.kind) == {"score"} and set(mine.dataset) == {"digits"}
    assert {"fid", "copy-rate", "parzen", "gmm", "class-coverage"} & set(mine.metric) >= {"fid", "copy-rate",
                                                                                          "parzen", "gmm"}
    assert (df.kind == "cell").any()
    assert out.path.name.startswith("score-b_val_b-digits-s0-")  # the label is data; the folder name is safe
    for k in ("samples", "sample_grid"):
        assert (out.path / out.record["artifacts"][k]).is_file()


def test_real_splits_as_samples_fid_zero_and_copying_flagged(digits):
    same = score("digits", "digits", samples_split="test", families=("quality",), metrics=["fid"])
    assert abs(same[0].value) < 1e-9
    copied = {r.protocol.space: r for r in score("digits", "digits", samples_split="train",
                                                 families=("overfitting",)) if r.metric == "copy-rate"}
    held = {r.protocol.space: r for r in score("digits", "digits", samples_split="val",
                                               families=("overfitting",)) if r.metric == "copy-rate"}
    assert copied and all(r.params["flagged"] for r in copied.values())
    assert not any(r.params["flagged"] for r in held.values())


def _export(path, meta=None, dynamic=True):
    m = H.tiny_decoder()
    ds = {"z": {0: torch.export.Dim("n")}} if dynamic else None
    ep = torch.export.export(m, (torch.randn(3, H.Z_DIM),), dynamic_shapes=ds)
    torch.export.save(ep, str(path), extra_files={"genbench.json": json.dumps(meta)} if meta else None)
    return m


def test_torch_export_and_torchscript_programs(matrix_run, tmp_path):
    res, _, _ = matrix_run
    m = _export(tmp_path / "g.pt2", {"z_dim": 4, "latent": "normal"})
    gen = load_generator(tmp_path / "g.pt2")
    a = gen.sample(50, seed=7)
    assert torch.equal(a, load_generator(tmp_path / "g.pt2").sample(50, seed=7))  # same seed, same samples
    assert not torch.equal(a, gen.sample(50, seed=8))
    z = torch.Generator().manual_seed(7)
    assert torch.allclose(a, m(torch.randn(50, 4, generator=z)), atol=1e-6)  # N(0, I) latents from the seed
    out = score_run(generator=str(tmp_path / "g.pt2"), reference="digits", results=res, name="exported",
                    families=("quality", "likelihood"), **FAST)
    assert {"fid", "parzen", "gmm"} <= {r.metric for r in out.rows}
    assert "iwae" not in {r.metric for r in out.rows}  # a program has no likelihood protocol
    # a program exported with a static batch of 3 is run in padded batches: same samples
    _export(tmp_path / "static.pt2", {"z_dim": 4}, dynamic=False)
    assert torch.allclose(load_generator(tmp_path / "static.pt2").sample(50, seed=7), a, atol=1e-6)

    ts = torch.jit.script(H.tiny_decoder())
    meta = json.dumps({"z_dim": 4, "latent": "normal"})
    torch.jit.save(ts, str(tmp_path / "g.ts"), _extra_files={"genbench.json": meta})
    tsg = load_generator(tmp_path / "g.ts")
    assert torch.allclose(tsg.sample(50, seed=7), a, atol=1e-6)
    score_run(generator=str(tmp_path / "g.ts"), reference="digits", results=res, name="scripted",
              families=("quality",), **FAST)
    df = _frame(res)
    assert {"exported", "scripted"} <= set(df.generator)
    f_exp = df[(df.generator == "exported") & (df.metric == "fid")].value.item()
    f_ts = df[(df.generator == "scripted") & (df.metric == "fid")].value.item()
    assert f_exp == pytest.approx(f_ts, rel=1e-6)

    # flags that contradict the file's metadata are an error
    with pytest.raises(LoadError, match=r"--z-dim 5 contradicts the file's metadata z_dim=4"):
        load_generator(tmp_path / "g.pt2", z_dim=5)
    with pytest.raises(LoadError, match=r"--latent uniform contradicts"):
        load_generator(tmp_path / "g.ts", latent="uniform")


def test_entry_point_with_exact_likelihood(tmp_path):
    res = tmp_path / "results"
    out = score_run(generator="score_helpers:pixel_categorical", reference="digits", results=res, name="pixcat",
                    families=("likelihood",), **FAST)
    from genbench.data import load_dataset

    test_x = load_dataset("digits").test.x[:100]
    exact = next(r for r in out.rows if r.metric == "exact-loglik" and r.protocol.ref == "test")
    assert exact.kind == "exact"
    assert exact.value == pytest.approx(H.exact_loglik_oracle(test_x), rel=1e-9)
    assert "exact-loglik" in set(_frame(res).metric)


def test_state_dicts_with_an_entry_point(tmp_path):
    from safetensors.torch import save_file

    m = H.tiny_decoder()
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"), metadata={"genbench.json": json.dumps({"z_dim": 4})})
    torch.save(m.state_dict(), tmp_path / "w.pt")
    want = load_generator(_export_path(tmp_path)).sample(40, seed=3)
    st = load_generator(tmp_path / "w.safetensors", entry="score_helpers:untrained_decoder")
    pt = load_generator(tmp_path / "w.pt", entry="score_helpers:untrained_decoder", z_dim=4)
    assert torch.allclose(st.sample(40, seed=3), want, atol=1e-6)
    assert torch.allclose(pt.sample(40, seed=3), want, atol=1e-6)
    with pytest.raises(LoadError, match="pass --entry module:factory"):
        load_generator(tmp_path / "w.safetensors")
    res = tmp_path / "results"
    out = score_run(generator=str(tmp_path / "w.safetensors"), reference="digits", results=res, name="st",
                    entry="score_helpers:untrained_decoder", families=("quality",), **FAST)
    assert out.record["config"]["source"]["format"] == "safetensors state dict"
    assert set(_frame(res).generator) == {"st"}


def _export_path(tmp_path):
    p = tmp_path / "ref.pt2"
    if not p.exists():
        _export(p, {"z_dim": 4})
    return p


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": H.Marker(str(marker))}, tmp_path / "evil.pt")
    assert not marker.exists()
    res = tmp_path / "results"
    with pytest.raises(LoadError, match=r"unpickling arbitrary Python objects.*--trust-checkpoint"):
        score(generator=str(tmp_path / "evil.pt"), reference="digits", results=res, **FAST)
    assert not marker.exists()
    assert _nothing_stored(res) == (True, [])
    # a whole pickled module needs unpickling too: refused, then loaded only with the explicit opt-in
    torch.save(H.tiny_decoder(), tmp_path / "whole.pt")
    with pytest.raises(LoadError, match="--trust-checkpoint"):
        load_generator(tmp_path / "whole.pt", z_dim=4)
    g = load_generator(tmp_path / "whole.pt", z_dim=4, trust_checkpoint=True)
    assert g.sample(5, seed=0).shape == (5, 1, 8, 8)


def test_a_pt2_that_would_unpickle_is_refused(tmp_path):
    """torch.export.load unpickles payloads marked use_pickle with weights_only=False: such archives are refused
    before torch sees them."""
    marker = tmp_path / "pwned"
    _export(tmp_path / "g.pt2", {"z_dim": 4})
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(tmp_path / "g.pt2") as zin, zipfile.ZipFile(bad, "w") as zout:
        cfg_name = next(n for n in zin.namelist() if n.endswith("model_weights_config.json"))
        cfg = json.loads(zin.read(cfg_name))
        entry = next(iter(cfg["config"].values()))
        entry["use_pickle"] = True
        weight_name = cfg_name.rsplit("/", 1)[0] + "/" + entry["path_name"]
        payload = io.BytesIO()
        torch.save(H.Marker(str(marker)), payload)  # what torch.export.load would unpickle
        for item in zin.infolist():
            if item.filename == cfg_name:
                zout.writestr(item, json.dumps(cfg))
            elif item.filename == weight_name:
                zout.writestr(item, payload.getvalue())
            else:
                zout.writestr(item, zin.read(item))
    with pytest.raises(LoadError, match="pickled object"):
        load_generator(bad)
    assert not marker.exists()


@pytest.mark.parametrize("spec, kwargs, message", [
    ("score_helpers:Tanh", {}, r"outside the declared range \[0.0, 1.0\] \(min -1, max 1\)"),
    ("score_helpers:NaNs", {}, r"NaN"),
    ("score_helpers:LateNaN", {}, r"64 NaN and 0 Inf values in 1 of 300 samples \(first at index 299\)"),
    ("score_helpers:Flat", {}, r"shape \(8, 64\), expected \(8, 1, 8, 8\)"),
    ("score_helpers:Uint8", {}, r"dtype torch.uint8; expected a floating-point tensor"),
    ("score_helpers:raising_factory", {}, r"the factory raised RuntimeError: the weights server is down"),
    ("score_helpers:not_a_generator", {}, r"gave a dict, which has no sample"),
    ("score_helper:pixel_categorical", {}, r"no module named 'score_helper'. Did you mean: score_helpers"),
    ("score_helpers:pixel_categorica", {}, r"has no attribute 'pixel_categorica'. Did you mean: pixel_categorical"),
])
def test_bad_generators_are_clear_errors_and_store_nothing(tmp_path, spec, kwargs, message):
    res = tmp_path / "results"
    with pytest.raises(ValueError, match=message):
        score(generator=spec, reference="digits", results=res, **FAST, **kwargs)
    assert _nothing_stored(res) == (True, [])


def test_files_that_are_not_what_their_name_says(tmp_path):
    (tmp_path / "img.pt2").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(LoadError, match="not a PyTorch, torch.export or safetensors file"):
        load_generator(tmp_path / "img.pt2")
    torch.jit.save(torch.jit.script(H.tiny_decoder()), str(tmp_path / "ts.pt2"))
    with pytest.raises(LoadError, match=r"the name says .pt2 but the file is a TorchScript archive"):
        load_generator(tmp_path / "ts.pt2")
    from safetensors.torch import save_file

    save_file(H.tiny_decoder().state_dict(), str(tmp_path / "w.pt"))
    with pytest.raises(LoadError, match=r"the name says .pt but the file is a safetensors file"):
        load_generator(tmp_path / "w.pt", entry="score_helpers:untrained_decoder")


def test_cli_score_generator_json_and_stats_reference(tmp_path, capsys, digits):
    res = tmp_path / "results"
    _export(tmp_path / "g.pt2", {"z_dim": 4})
    code = main(["score", "--generator", str(tmp_path / "g.pt2"), "--reference", "digits", "--name", "mine",
                 "--families", "quality", "--n-samples", "200", "--results", str(res), "--json", "--device", "cpu"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "mine" and out["run_id"].startswith("score-mine-digits-s0-")
    fid = next(m for m in out["metrics"] if m["metric"] == "fid")
    assert fid["n"] == {"real": 200, "fake": 200}  # equal n, as in the matrix
    # bad input through the CLI: exit 2, the reason on stderr, nothing more in the store
    assert main(["score", "--generator", str(tmp_path / "g.pt2"), "--reference", "digits", "--z-dim", "3",
                 "--results", str(res)]) == 2
    assert "contradicts" in capsys.readouterr().err
    assert len(ResultsStore(res).runs()) == 1
    # a statistics file stands in for the reference: the same FID as the dataset itself
    np.savez(tmp_path / "f.npz", x=(digits.val.x * 255).round().to(torch.uint8).numpy())
    assert main(["stats", "digits", "-o", str(tmp_path / "stats.npz")]) == 0
    capsys.readouterr()
    via_stats = score(f"npz:{tmp_path / 'f.npz'}", f"stats:{tmp_path / 'stats.npz'}", families=("quality",),
                      metrics=["fid"])
    direct = score(f"npz:{tmp_path / 'f.npz'}", "digits", families=("quality",), metrics=["fid"])
    assert via_stats[0].value == direct[0].value and str(via_stats[0].protocol) == str(direct[0].protocol)
    with pytest.raises(ValueError, match="computed with extractor"):
        score(f"npz:{tmp_path / 'f.npz'}", f"stats:{tmp_path / 'stats.npz'}", extractor="pixels",
              families=("quality",), metrics=["fid"])
    assert math.isfinite(direct[0].value)


def test_a_genbench_train_run_folder(tmp_path):
    """`genbench train`'s run folder scores with its model's protocols: IWAE and ELBO from the VAE."""
    from genbench.harness import train_run

    res = tmp_path / "results"
    rec = train_run("vae", "digits", seed=1, results_dir=res, train_overrides={"steps": 20}, progress=False)
    out = score_run(generator=rec["path"], reference="digits", results=res, seed=1, families=("likelihood",),
                    **FAST)
    iwae = [r for r in out.rows if r.metric == "iwae"]
    assert iwae and all(r.kind == "lower-bound" and math.isfinite(r.value) for r in iwae)
    assert out.record["family"] == "vae" and out.record["config"]["source"]["format"] == "genbench-run"
    assert {r["kind"] for r in ResultsStore(res).runs()} == {"train", "score"}


def _scripted(tmp_path):
    p = tmp_path / "g.ts"
    torch.jit.save(torch.jit.script(H.tiny_decoder()), str(p), _extra_files={"genbench.json": json.dumps({"z_dim": 4})})
    return str(p)


def test_generator_against_npz_and_stats_references(tmp_path, digits):
    """A generator scores against a user's images and a statistics file by evaluate_model's road: the digits test
    split saved to npz gives the built-in reference's FID exactly; families the reference cannot serve are
    skipped with a note on every row; the reference is recorded in the stored run."""
    from genbench.scoring import write_stats

    res = tmp_path / "results"
    gen = _scripted(tmp_path)
    np.savez(tmp_path / "test.npz", x=digits.test.x.numpy())
    fast = dict(n_samples=200, device="cpu", seed=3, repeats=2)
    builtin = score_run(generator=gen, reference="digits", families=("quality",), **fast)
    npz = score_run(generator=gen, reference=f"npz:{tmp_path / 'test.npz'}", extractor="domain:digits",
                    families=("quality", "likelihood", "overfitting"), results=res, name="vs-npz", **fast)
    fid_b = next(r for r in builtin.rows if r.metric == "fid")
    fid_n = next(r for r in npz.rows if r.metric == "fid")
    # the same images, samples, subsamples and extractor: the same FID. Not bit for bit: the built-in split's
    # tensor has other strides than the npz file's (C = 1), and the float32 convolutions round differently
    # (features differ by ~1e-6), so equal to float32 rounding
    assert fid_n.value == pytest.approx(fid_b.value, rel=1e-6, abs=0)
    assert fid_n.protocol.space == fid_b.protocol.space and fid_n.protocol.n == fid_b.protocol.n == (
        ("real", 200), ("fake", 200))
    assert fid_n.params["subsample_values"] == pytest.approx(fid_b.params["subsample_values"], rel=1e-6)
    assert {r.metric for r in npz.rows} >= {"fid", "precision", "recall"}
    assert not {"parzen", "copy-rate"} & {r.metric for r in npz.rows}  # no dataset splits, no --train
    note = next(w for w in fid_n.warnings if w.startswith("not evaluated against this reference"))
    assert "likelihood" in note and "overfitting" in note and "--train" in note
    rec = json.loads((npz.path / "result.json").read_text())
    assert rec["kind"] == "score" and rec["config"]["input"] == "generator"
    assert rec["config"]["reference"] == f"npz:{tmp_path / 'test.npz'}"
    assert rec["config"]["data"]["reference"]["split"] == "all"
    assert set(rec["config"]["skipped_families"]) == {"likelihood", "overfitting"}
    assert rec["metrics"][0]["params"]["data"]["reference"]["shape"] == [1, 8, 8]

    # with --train the copy checks run against it (and the gallery is drawn from it)
    np.savez(tmp_path / "train.npz", x=digits.train.x.numpy())
    tr = score_run(generator=gen, reference=f"npz:{tmp_path / 'test.npz'}", train=f"npz:{tmp_path / 'train.npz'}",
                   families=("quality", "overfitting"), results=res, name="vs-npz-train", **fast)
    assert "copy-rate" in {r.metric for r in tr.rows} and "nn_gallery" in tr.record["artifacts"]
    assert tr.record["config"]["data"]["train"]["split"] == "all"

    # a statistics file of the digits test split: its extractor, the same FID as the dataset itself
    write_stats("digits", tmp_path / "stats.npz")
    st = score_run(generator=gen, reference=f"stats:{tmp_path / 'stats.npz'}", families=("quality",),
                   results=res, name="vs-stats", **fast)
    fid_s = next(r for r in st.rows if r.metric == "fid")
    assert fid_s.value == fid_b.value and str(fid_s.protocol) == str(fid_b.protocol)  # exactly: the same features
    stats = st.record["config"]["data"]["reference"]["statistics"]
    assert stats["extractor_id"] == fid_b.protocol.space and stats["reference"] == "digits"
    assert {r["generator"] for r in ResultsStore(res).runs()} == {"vs-npz", "vs-npz-train", "vs-stats"}


def test_generator_shape_mismatch_with_the_reference_stores_nothing(tmp_path):
    res = tmp_path / "results"
    np.savez(tmp_path / "big.npz", x=np.random.default_rng(0).random((50, 1, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected \(1, 16, 16\), got \(1, 8, 8\)\. Score it against real data"):
        score_run(generator=_scripted(tmp_path), reference=f"npz:{tmp_path / 'big.npz'}", results=res,
                  families=("quality",), n_samples=50, device="cpu")
    assert _nothing_stored(res) == (True, [])


def test_a_shifted_copycat_run_gallery_draws_the_matched_shift(tmp_path):
    """Through evaluate_model: the transform check flags the copycat, and the run's gallery shows the flagged
    samples beside their shifted training images, named "shift (+1, 0)"."""
    res = tmp_path / "results"
    out = score_run(generator="score_helpers:shifted_copies", reference="digits", families=("overfitting",),
                    results=res, name="copycat", n_samples=120, device="cpu")
    tc = next(r for r in out.rows if r.metric == "transform-copy-rate")
    assert tc.params["flagged"] and set(tc.params["transform_counts"]) == {"dx=+1,dy=+0"}
    pairs = json.loads((out.path / out.record["artifacts"]["nn_gallery_pairs"]).read_text())["pairs"]
    assert pairs and all(p["match"]["caption"] == "shift (+1, 0)" and p["match"]["flagged"] for p in pairs)
    flagged_first = [e["sample"] for e in tc.params["examples"]]
    assert [p["fake_index"] for p in pairs][: len(flagged_first)] == sorted(
        flagged_first, key=lambda i: (next(p["match"]["distance"] for p in pairs if p["fake_index"] == i), i))
    from PIL import Image

    with Image.open(out.path / out.record["artifacts"]["nn_gallery"]) as im:
        im.load()
        assert im.format == "PNG"
