"""The HTML report: self-contained, escaped, every table and picture there, sortable, no errors.

The store is built here from hand-written records with real artifacts (PNG sample grids, a
nearest-neighbour gallery and its pairs, training curves, 2-D samples) in real run folders; the
browser test opens the written report.html in headless Chromium (Debian's ``chromium`` package,
driven by Playwright; no browser download).
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from genbench.reports.grids import write_sample_grid
from genbench.results import MetricResult, Protocol
from genbench.runs import RunFolder
from genbench.store import ResultsStore

CHROMIUM = "/usr/bin/chromium"
XSS_LABEL = "<script>alert(1)</script>"
XSS_ERROR = 'RuntimeError: <img src=x onerror="alert(2)"> diverged at step 7'
FID = Protocol("fid", space="domain-digits-0123abcd", n={"real": 50, "fake": 100}, ref="test")
PREC = Protocol("precision", space="domain-digits-0123abcd", n={"real": 50, "fake": 100}, ref="test", fixed={"k": 3})
DENS = Protocol("density", space="domain-digits-0123abcd", n={"real": 50, "fake": 100}, ref="test", fixed={"k": 5})
PARZEN = Protocol("parzen", space="pixels", n={"samples": 100, "test": 50}, ref="test")
IWAE = Protocol("iwae", n={"test": 50}, ref="test", fixed={"k": 50})
MODES = Protocol("modes-captured", space="ring", n={"fake": 500})
SECS = Protocol("train-seconds", space="digits", fixed={"device": "cpu"})


def _record(res, store, run_id, *, name, seed, metrics=(), label="", train=None, status="done", error=None,
            dataset="digits", control=False, artifacts=None):
    gen = {"name": name, "label": label, "model": {}, "train": train or {}}
    rf = RunFolder.open(res, run_id)
    rec = rf.write_result(
        status=status, error=error, metrics=list(metrics), generator=label or name, family=name, dataset=dataset,
        seed=seed, kind="cell", matrix="tiny", cell_id=run_id, control=control, artifacts=artifacts or {},
        timings={"train_s": 2.5, "sample_s": 0.1, "quality_s": 0.4, "total_s": 3.1},
        traceback="Traceback (most recent call last):\n  ...\n" + (error or "") if status == "failed" else None,
        config={"matrix": "tiny", "cell_id": run_id, "generator": gen, "dataset": dataset, "seed": seed,
                "evaluation": {"n_samples": 100, "reference": "test"}},
        provenance={"genbench": "0.1.0", "git_commit": "abc123", "packages": {"numpy": np.__version__},
                    "python": "3.11", "platform": "linux", "device": "cpu (x86_64)", "seed": seed})
    store.put(rec, path=rf.path)
    return rf


def _image_artifacts(rf: RunFolder, rng: np.random.Generator, *, gallery: bool = True) -> dict[str, str]:
    from genbench.harness.curves import write_curves_png
    from genbench.reports.gallery import write_nn_gallery

    fake = rng.random((64, 1, 8, 8))
    arts = {"sample_grid": str(write_sample_grid(rf.artifacts / "samples.png", fake).relative_to(rf.path))}
    if gallery:
        g = write_nn_gallery(rf.artifacts / "nn_gallery.png", fake[:20], rng.random((30, 1, 8, 8)), n=4, k=2)
        arts["nn_gallery"] = str(g.relative_to(rf.path))
        arts["nn_gallery_pairs"] = str(g.with_suffix(".json").relative_to(rf.path))
    rows = [{"step": s, "loss": 3.0 / (s + 1)} for s in range(0, 50, 10)]
    c = write_curves_png(rf.artifacts / "curves.png", rows, [{"step": 40, "val_elbo": -1.0}], title="curves")
    arts["curves_png"] = str(c.relative_to(rf.path))
    return arts


def _quality(fid, prec, dens, warnings=()):
    return [MetricResult("fid", fid, FID, higher_is_better=False, warnings=tuple(warnings)),
            MetricResult("precision", prec, PREC, higher_is_better=True),
            MetricResult("density", dens, DENS, higher_is_better=True, target=1.0)]


CENTRES = np.stack([2 * np.cos(np.arange(8) * np.pi / 4), 2 * np.sin(np.arange(8) * np.pi / 4)], 1)
STD = 0.05


def _ring_log_density(x):
    x = np.asarray(x, dtype=np.float64)
    d2 = ((x[:, None, :] - CENTRES[None]) ** 2).sum(-1)
    lc = -d2 / (2 * STD**2) - math.log(2 * math.pi * STD**2)
    m = lc.max(1, keepdims=True)
    return m[:, 0] + np.log(np.exp(lc - m).mean(1))


def reference_data(name):
    rng = np.random.default_rng(1)
    if name == "digits":
        return {"images": rng.random((16, 1, 8, 8)), "split": "test"}
    pts = CENTRES[rng.integers(0, 8, 400)] + STD * rng.standard_normal((400, 2))
    return {"points": pts, "centres": CENTRES, "std": STD, "log_density": _ring_log_density, "split": "test"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A small store: two vae budgets (two seeds and one), a gan labelled with markup, a copycat
    control, a failed cell with markup in its error, and a 2-D ring with samples; its report."""
    from genbench.reports.html import write_report

    tmp = tmp_path_factory.mktemp("report")
    res = tmp / "results"
    store = ResultsStore(res)
    rng = np.random.default_rng(0)
    for seed, fid in ((0, 40.0), (1, 44.0)):
        rf = _record(res, store, f"vae-20-s{seed}", name="vae", seed=seed, train={"steps": 20})
        _record(res, store, rf.run_id, name="vae", seed=seed, train={"steps": 20}, artifacts=_image_artifacts(
            rf, rng), metrics=[*_quality(fid, 0.2, 0.4), MetricResult("parzen", -60.0 - seed, PARZEN, std=1.0,
                                                                      std_kind="stderr", kind="estimate",
                                                                      unit="nats", higher_is_better=True),
                               MetricResult("iwae", -90.0 + seed, IWAE, std=0.5, std_kind="stderr",
                                            kind="lower-bound", unit="nats", higher_is_better=True),
                               MetricResult("train_seconds", 12.0, SECS, unit="s", higher_is_better=False)])
    rf = _record(res, store, "vae-400-s0", name="vae", seed=0, train={"steps": 400})
    _record(res, store, rf.run_id, name="vae", seed=0, train={"steps": 400}, artifacts=_image_artifacts(rf, rng),
            metrics=[*_quality(12.0, 0.6, 0.9), MetricResult("parzen", -40.0, PARZEN, std=1.0, std_kind="stderr",
                                                             kind="estimate", unit="nats", higher_is_better=True),
                     MetricResult("iwae", -80.0, IWAE, std=0.5, std_kind="stderr", kind="lower-bound",
                                  unit="nats", higher_is_better=True),
                     MetricResult("train_loss", 0.3, Protocol("train-loss", space="digits", fixed={"window": "last"}),
                                  higher_is_better=False)])
    rf = _record(res, store, "xss-s0", name="gan", label=XSS_LABEL, seed=0)
    _record(res, store, rf.run_id, name="gan", label=XSS_LABEL, seed=0,
            artifacts=_image_artifacts(rf, rng, gallery=False),
            metrics=[*_quality(25.0, 0.7, 1.3, warnings=["FID with n < d <b>biased</b>"]),
                     MetricResult("parzen", -50.0, PARZEN, std=2.0, std_kind="stderr", kind="estimate", unit="nats",
                                  higher_is_better=True)])
    rf = _record(res, store, "copycat-s0", name="copycat", seed=0, control=True)
    _record(res, store, rf.run_id, name="copycat", seed=0, control=True,
            artifacts=_image_artifacts(rf, rng, gallery=False), metrics=_quality(0.5, 0.95, 1.0))
    _record(res, store, "aae-s0", name="aae", seed=0, status="failed", error=XSS_ERROR)
    # the 2-D ring: samples in samples.npz, modes from the metric's params
    rf = _record(res, store, "ring-vae-s0", name="vae", seed=0, dataset="ring")
    pts = CENTRES[rng.integers(0, 5, 500)] + STD * rng.standard_normal((500, 2))
    np.savez(rf.artifacts / "samples.npz", x=pts.astype(np.float32))
    counts = [100, 100, 100, 100, 100, 0, 0, 0]
    _record(res, store, rf.run_id, name="vae", seed=0, dataset="ring", artifacts={"samples": "artifacts/samples.npz"},
            metrics=[MetricResult("modes-captured", 5.0, MODES, higher_is_better=True,
                                  params={"n_modes": 8, "hq_counts": counts, "missing_modes": [5, 6, 7]})])
    out = tmp / "out"
    files = write_report(res, out_dir=out, reference_data=reference_data)
    return out / "report.html", files


def test_report_files(report):
    html, files = report
    assert {p.name for p in files} == {"results_long.csv", "runs.csv", "comparison_digits.csv", "comparison_ring.csv",
                                       "comparison.txt", "README.md", "report.html"}
    md = (html.parent / "README.md").read_text()
    assert "| vae [steps=400] | 1 |" in md and "aae on digits, seed 0" in md
    # markdown passes raw HTML through: labels and errors are escaped there too
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "<script" not in md and "<img" not in md


def test_report_html_is_self_contained_and_escaped(report):
    text = report[0].read_text(encoding="utf-8")
    # every image is embedded; nothing is fetched from anywhere (a CSP forbids it besides)
    srcs = re.findall(r'\ssrc="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="(https?:)?//', text)
    assert "default-src 'none'" in text
    # markup from labels and errors is text, never markup
    assert XSS_LABEL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text and "&lt;img src=x onerror=" in text
    assert text.count("<script") == 1  # the sorting script only
    # a metric's warning is marked on its cell and spelled out on hover
    assert text.count('<span class="warn">⚠</span>') == 1 and "- FID with n &lt; d &lt;b&gt;biased&lt;/b&gt;" in text
    # wall-clock time is in the run list, not in a comparison column
    assert 'data-protocol="train-seconds' not in text and "train_s" in text
    # a family's own training loss compares nothing across families: CSV only
    assert 'data-protocol="train-loss' not in text
    assert "train-loss@digits/window=last" in (report[0].parent / "results_long.csv").read_text()


def _browser():
    sync = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs Playwright: pip install playwright (no browser "
        "download: it drives Debian's chromium, apt-get install -y chromium)")
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip("the browser test needs Chromium at /usr/bin/chromium: apt-get update && apt-get install -y "
                    "chromium (pip install playwright for the driver; do not run `playwright install`)")
    return sync


def test_report_in_headless_chromium(report, tmp_path):
    sync = _browser()
    html = report[0]
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors, dialogs, requests = [], [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri())
            page.wait_for_load_state("load")

            # every expected table, with its rows
            tables = page.evaluate("""Array.from(document.querySelectorAll('section.dataset table.cmp')).map(t => ({
                ds: t.closest('section').querySelector('h2').textContent, family: t.dataset.family,
                group: t.dataset.group,
                models: Array.from(t.querySelectorAll('tbody.models tr td.model')).map(td => td.textContent),
                refs: Array.from(t.querySelectorAll('tbody.refs tr td.model')).map(td => td.textContent)}))""")
            got = {(t["ds"], t["family"], t["group"]): (t["models"], t["refs"]) for t in tables}
            models = [XSS_LABEL, "aae", "vae [steps=20]", "vae [steps=400]"]
            assert got == {
                ("digits", "quality", ""): (models, ["copycat (control)"]),
                ("digits", "likelihood", "lower-bound, nats"): (["aae", "vae [steps=20]", "vae [steps=400]"], []),
                ("digits", "likelihood", "estimate, nats"): (models, []),
                ("ring", "coverage", ""): (["vae [steps=default]"], []),
            }
            # the markup label is shown as text; the failed cell shows its state
            assert page.locator("td.model", has_text=XSS_LABEL).count() == 2
            assert page.locator("table.cmp td.failed").count() >= 1
            assert page.locator("#runs td.err", has_text="onerror=").count() == 1
            # direction arrows, the target value and best marks
            heads = page.locator("table.cmp[data-family=quality] thead th").all_inner_texts()
            assert [h.strip() for h in heads[:2]] == ["model", "seeds"]
            assert heads[2:] == ["fid ↓", "precision ↑", "density →1"]
            assert "protocol: fid@domain-digits-0123abcd/n=50v100/ref=test" in page.locator(
                "table.cmp[data-family=quality] th", has_text="fid").get_attribute("title")
            best = page.locator("table.cmp[data-family=quality] td.best").all_inner_texts()
            # fid: lowest; precision: highest; density: nearest its target 1 (1.3 is farther than 0.9)
            # (single seeds without an own uncertainty say so: "± –")
            assert best == ["0.7 ± –", "12 ± –", "0.9 ± –"]
            assert page.evaluate("getComputedStyle(document.querySelector('td.best'), '::after').content") == '" ★"'

            # every image loaded
            imgs = page.evaluate("Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.complete])")
            # samples: real + 4 models on digits, real + 1 on the ring; galleries: 2; curves: 4; one trade-off plot
            assert len(imgs) == 5 + 2 + 2 + 4 + 1, imgs
            assert all(w > 0 and done for _, w, done in imgs), imgs

            # sorting: click fid, ascending then descending (rows without a value last)
            def fid_order():
                return page.evaluate("""Array.from(document.querySelectorAll(
                    'table.cmp[data-family=quality] tbody.models tr')).map(r => r.cells[2].getAttribute('data-v'))""")
            header = page.locator("table.cmp[data-family=quality] th", has_text="fid")
            header.click()
            assert header.get_attribute("aria-sort") == "ascending"
            assert fid_order() == ["12.0", "25.0", "42.0", ""]
            header.click()
            assert fid_order() == ["42.0", "25.0", "12.0", ""]
            # the model column sorts as text
            page.locator("table.cmp[data-family=quality] th.model").click()
            names = page.locator("table.cmp[data-family=quality] tbody.models td.model").all_inner_texts()
            assert [n for n in names if n != XSS_LABEL] == ["aae", "vae [steps=20]", "vae [steps=400]"]
            refs = page.locator("table.cmp[data-family=quality] tbody.refs td.model")
            assert refs.inner_text() == "copycat (control)"  # reference rows stay below, unsorted

            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            assert not dialogs, dialogs
            assert not errors, errors
            assert all(u.startswith(("file:", "data:")) for u in requests), requests
        finally:
            browser.close()


def test_a_corrupt_artifact_is_named_not_fatal(tmp_path):
    from genbench.reports.html import write_report

    res = tmp_path / "r"
    store = ResultsStore(res)
    rf = RunFolder.open(res, "ring-0")
    (rf.artifacts / "samples.npz").write_bytes(b"not a zip file")
    (rf.artifacts / "samples.png").write_bytes(b"not a png either")
    _record(res, store, "ring-0", name="vae", seed=0, dataset="ring", artifacts={"samples": "artifacts/samples.npz"},
            metrics=[MetricResult("modes-captured", 5.0, MODES, higher_is_better=True)])
    write_report(res, out_dir=tmp_path / "o", reference_data=reference_data)
    text = (tmp_path / "o" / "report.html").read_text()
    assert "ring-0: samples.npz not drawn" in text
    assert text.count("<img") == 1  # the real data only: the fake PNG is not embedded as an image
