"""Tables of reports/mnist from a results store of `genbench run mnist` (every number read from the run).

    python reports/mnist/make_tables.py RESULTS_DIR reports/mnist

writes ``summary.csv`` (one row per cell: the headline numbers, protocol names and timings) and
``tables.md`` (the markdown tables quoted in README.md); ``genbench report`` writes the tidy CSVs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd

from genbench.store import ResultsStore

PUBLISHED = {
    ("gan", "mnist"): ("Parzen, continuous", "225 ± 2 (Goodfellow et al. 2014, Table 1)"),
    ("aae", "mnist"): ("Parzen, continuous", "340 ± 2 (Makhzani et al. 2015)"),
    ("vae", "mnist-binary"): ("IWAE NLL, binarised", "about 85 nats (Burda et al. 2016)"),
    ("pixelcnn", "mnist-binary"): ("exact NLL, binarised", "81.30 nats (van den Oord et al. 2016)"),
    ("copycat", "mnist"): ("Parzen, continuous", "beats every model under Parzen (Theis et al. 2016)"),
    ("heldout", "mnist"): ("Parzen, continuous", "true distribution about 243 (Theis et al. 2016)"),
}
OVERFITTING = ["nn-median-ratio", "copy-rate", "authenticity", "ct", "transform-copy-rate"]
QUALITY = ["fid", "kid", "precision", "recall", "density", "coverage", "is", "classes-covered", "class-kl"]


def _one(df: pd.DataFrame, metric: str, ref: str | None = None) -> pd.Series | None:
    d = df[df.metric == metric]
    if ref is not None:
        d = d[d.protocol.str.contains(f"/ref={ref}/", regex=False) | d.protocol.str.endswith(f"/ref={ref}")]
    if d.empty:
        return None
    if len(d) > 1:
        raise ValueError(f"{metric} (ref={ref}): {len(d)} rows: {d.protocol.tolist()}")
    return d.iloc[0]


def _fmt(r: pd.Series | None, scale: float = 1.0, digits: int = 2) -> str:
    if r is None:
        return "-"
    s = f"{scale * r.value:.{digits}f}"
    if pd.notna(r["std"]):
        s += f" ± {r['std']:.{digits}f}"
    return s


def main(results: str, out: str) -> None:
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    df = ResultsStore(results).to_frame()
    df = df[(df.matrix == "mnist") & (df.status == "done")].copy()

    runs = {}
    for p in sorted(Path(results, "runs").glob("*/result.json")):
        r = json.loads(p.read_text())
        if r.get("matrix") == "mnist" and r.get("status") == "done":
            runs[r["run_id"]] = r

    rows, head = [], []
    for run_id, r in runs.items():
        d = df[df.run_id == run_id]
        g, ds = r["generator"], r["dataset"]
        ev = r.get("config", {}).get("evaluation", {})
        row = {"generator": g, "dataset": ds, "run_id": run_id}
        for name in ("parzen", "gmm", "iwae", "elbo", "exact-loglik"):
            t = _one(d, name, "test")
            row[f"{name}_test"] = None if t is None else t.value
            row[f"{name}_test_se"] = None if t is None else t["std"]
            gap = _one(d, f"{name}-gap")
            row[f"{name}_gap"] = None if gap is None else gap.value
            if t is not None:
                row[f"{name}_protocol"] = t.protocol
        for name in QUALITY:
            q = _one(d, name)
            row[name] = None if q is None else q.value
            row[f"{name}_std"] = None if q is None else q["std"]
        for name in ("fid_real", "kid_real", "precision_real", "recall_real"):
            q = _one(d, name)
            row[name] = None if q is None else q.value
        # copy checks, in pixel space and in the domain classifier's feature space
        for name in OVERFITTING:
            for space, d_s in (("pixels", d[d.protocol.str.contains("@pixels/", regex=False)]),
                               ("domain", d[d.protocol.str.contains("@domain-", regex=False)])):
                q = d_s[d_s.metric == name]
                if len(q) == 1:
                    row[f"{name}_{space}"] = q.iloc[0].value
                    params = q.iloc[0].params
                    params = json.loads(params) if isinstance(params, str) and params else (params or {})
                    row[f"{name}_{space}_flagged"] = bool(params.get("flagged", False))
        row.update({f"time_{k}": round(v, 1) for k, v in r.get("timings", {}).items()})
        # the training's own clock from the run log (a resumed cell's timings["train_s"] only reloads it)
        log = Path(results, "runs", run_id, "log.txt")
        found = re.findall(r"finished at step (\d+) after ([\d.]+) s", log.read_text() if log.is_file() else "")
        row["train_steps"], row["train_seconds"] = (int(found[-1][0]), float(found[-1][1])) if found else (None, None)
        row["threads"] = r.get("provenance", {}).get("threads")
        row["evaluation"] = json.dumps(ev, sort_keys=True) if ev else None
        rows.append(row)
        if (g, ds) in PUBLISHED:
            proto, pub = PUBLISHED[(g, ds)]
            if g in ("vae",):
                t, nll = _one(d, "iwae", "test"), True
            elif g == "pixelcnn":
                t, nll = _one(d, "exact-loglik", "test"), True
            else:
                t, nll = _one(d, "parzen", "test"), False
            head.append((g, ds, proto, _fmt(t, -1.0 if nll else 1.0), pub, "" if t is None else t.protocol))
    summary = pd.DataFrame(rows).sort_values(["dataset", "generator"])
    summary.to_csv(outp / "summary.csv", index=False)

    order = ["gan", "aae", "vae", "pixelcnn", "copycat", "heldout"]
    head.sort(key=lambda h: order.index(h[0]))
    lines = ["| model | dataset | protocol | ours | published | our protocol name |", "|---|---|---|---|---|---|"]
    lines += [f"| {g} | {ds} | {p} | {o} | {pub} | `{name}` |" for g, ds, p, o, pub, name in head]
    lines += ["", "| generator | dataset | Parzen test | Parzen train-test gap | GMM test | IWAE / exact test "
              "| FID (domain) | KID | precision | recall | density | coverage | IS | classes | training s | cell s |",
              "|" + "---|" * 16]
    for _, s in summary.iterrows():
        like = s.get("iwae_test") if pd.notna(s.get("iwae_test")) else s.get("exact-loglik_test")

        def f(v, d=2):
            return "-" if v is None or pd.isna(v) else f"{v:.{d}f}"

        lines.append(f"| {s.generator} | {s.dataset} | {f(s.parzen_test, 1)} ± {f(s.parzen_test_se, 1)} | "
                     f"{f(s.parzen_gap, 1)} | {f(s.gmm_test, 1)} | {f(like, 2)} | {f(s.fid, 3)} | {f(s.kid, 4)} | "
                     f"{f(s.precision, 3)} | {f(s.recall, 3)} | {f(s.density, 3)} | {f(s.coverage, 3)} | "
                     f"{f(s['is'], 2)} | {f(s['classes-covered'], 0)} | {f(s.get('train_seconds'), 0)} | "
                     f"{f(s.get('time_total_s'), 0)} |")
    lines += ["", "Copy checks against all 50,000 training images (pixel space / domain-classifier features; "
              "* = flagged by the check's own rule):", "",
              "| generator | dataset | NN median ratio | copy rate | authenticity | C_T "
              "| transform copy rate (pixels) |",
              "|" + "---|" * 7]

    def pair(s: pd.Series, name: str, d: int = 3) -> str:
        out = []
        for space in ("pixels", "domain"):
            v = s.get(f"{name}_{space}")
            if v is None or pd.isna(v):
                out.append("-")
            else:
                out.append(f"{v:.{d}f}" + ("*" if s.get(f"{name}_{space}_flagged") is True else ""))
        return " / ".join(out)

    for _, s in summary.iterrows():
        t = s.get("transform-copy-rate_pixels")
        flag = "*" if s.get("transform-copy-rate_pixels_flagged") is True else ""
        tc = "-" if t is None or pd.isna(t) else f"{t:.3f}{flag}"
        lines.append(f"| {s.generator} | {s.dataset} | {pair(s, 'nn-median-ratio')} | {pair(s, 'copy-rate')} | "
                     f"{pair(s, 'authenticity')} | {pair(s, 'ct', 1)} | {tc} |")
    (outp / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
