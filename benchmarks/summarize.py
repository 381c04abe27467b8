"""Regenerate the ratio table of benchmarks/README.md from a pytest-benchmark JSON file.

Usage: ``python benchmarks/summarize.py results/benchmarks.json benchmarks/README.md``

Rows are grouped by ``extra_info["suite"]`` and ``extra_info["case"]`` (set by
``_bench.run_timed``). Within a case, each implementation's median time is divided by ours (the
``impl`` named ``genbench``): a ratio above 1 means the peer is that many times slower than
genbench. ``extra_info["scale"]`` (a peer timed on a subset) multiplies its time before the ratio.
The table replaces whatever lies between the ``<!-- results:begin -->`` and
``<!-- results:end -->`` markers of the README; everything else in it is left alone.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
OURS = "genbench"
# per-suite numbers worth a column of their own
EXTRA = {"iwae": ("examples_per_s", "share_network_forward", "share_model_calls"),
         "pixelcnn-sampling": ("images_per_s",), "ais": ("examples_per_s_per_1k_steps",)}


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"


def _fmt_extra(key: str, value: float) -> str:
    if key.startswith("share"):
        return f"{key.replace('share_', '')} {100 * value:.0f}%"
    return f"{key.replace('_', ' ')} {value:,.0f}" if value >= 100 else f"{key.replace('_', ' ')} {value:.3g}"


def rows_from(data: dict) -> list[dict]:
    """One row per benchmark: suite, case, impl, scaled median seconds, peak RSS, notes."""
    rows = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "suite" not in info:
            continue
        scale = float(info.get("scale", 1.0) or 1.0)
        notes = [_fmt_extra(k, info[k]) for k in EXTRA.get(info["suite"], ()) if k in info]
        if scale != 1.0:
            notes.append(f"timed on {info.get('timed_test_rows', '?')} rows, x{scale:g}")
        if info.get("index_mismatches_first_100"):
            notes.append(f"{info['index_mismatches_first_100']} wrong indices in first 100")
        if "max_abs_err_nats" in info and info["impl"].startswith("sklearn"):
            notes.append(f"max error {info['max_abs_err_nats']:.3g} nats")
        rows.append({"suite": info["suite"], "case": str(info["case"]), "impl": info["impl"],
                     "seconds": b["stats"]["median"] * scale, "rounds": b["stats"]["rounds"],
                     "peak_mb": info.get("peak_rss_delta_mb"), "notes": "; ".join(notes)})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table: per case, ours first, then peers with time / ours."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["suite"], r["case"])].append(r)
    out = ["| suite | case | implementation | median time | vs genbench | peak RSS delta | notes |",
           "|---|---|---|---:|---:|---:|---|"]
    for (suite, case), rs in groups.items():
        ours = next((r for r in rs if r["impl"] == OURS), None)
        if ours is None:  # a suite whose one genbench row has a longer name (e.g. "genbench-ais")
            named = [r for r in rs if r["impl"].startswith(OURS)]
            ours = named[0] if len(named) == 1 else None
        rs = sorted(rs, key=lambda r: (r is not ours, r["impl"]))
        for r in rs:
            ratio = ""
            if ours is not None and r is not ours:
                ratio = f"{r['seconds'] / ours['seconds']:.2f}x"
            elif r is ours and len(rs) > 1:
                ratio = "1"
            mem = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f} MiB"
            cells = [suite, case, r["impl"], _fmt_time(r["seconds"]), ratio, mem, r["notes"]]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def machine_line(data: dict) -> str:
    m = data.get("machine_info", {})
    cpu = m.get("cpu", {}).get("brand_raw", "unknown CPU")
    threads = {b.get("extra_info", {}).get("torch_threads") for b in data["benchmarks"]} - {None}
    return (f"Measured {data.get('datetime', '?')} on {cpu} ({m.get('cpu', {}).get('count', '?')} cores, shared), "
            f"Python {m.get('python_version', '?')}, {', '.join(str(t) for t in sorted(threads))} thread(s) "
            "per implementation. Times are medians over the rounds run; ratios are peer / genbench "
            "(above 1: genbench is faster).")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    data = json.loads(Path(argv[1]).read_text())
    readme = Path(argv[2])
    text = readme.read_text() if readme.is_file() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = f"{machine_line(data)}\n\n{table(rows_from(data))}\n"
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{BEGIN}\n{body}{END}{tail}")
    tmp.replace(readme)  # atomic: a failed run never leaves half a table
    print(f"wrote {len(rows_from(data))} rows to {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
