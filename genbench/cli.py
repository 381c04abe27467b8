"""The ``genbench`` command line: run | train | score | report | ls | validate."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any


def _parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as TOML literals when they parse (numbers, bools, lists)."""
    import tomllib

    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise SystemExit(f"error: --set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = tomllib.loads(f"v = {v}")["v"]
        except tomllib.TOMLDecodeError:
            out[k.strip()] = v
    return out


def cmd_ls(args: argparse.Namespace) -> int:
    from genbench.data import DATASETS
    from genbench.generators import GENERATORS
    from genbench.metrics import METRICS

    sections: list[tuple[str, Any]] = [("datasets", DATASETS), ("generators", GENERATORS), ("metrics", METRICS)]
    try:
        from genbench.features import EXTRACTORS

        sections.append(("extractors", EXTRACTORS))
    except ImportError:
        pass
    wanted = args.what
    for title, reg in sections:
        if wanted and wanted != title:
            continue
        print(f"{title}:")
        entries = reg.entries()
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            tag = ""
            if title == "metrics":
                hib = e.meta.get("higher_is_better")
                tag = f" [{e.meta.get('family', '')}, " + ("higher better" if hib else "lower better" if hib is
                                                          False else "no direction") + "]"
            elif title == "generators":
                tag = " [control]" if not e.meta.get("trained", True) else ""
            print(f"  {e.name:<{width}}  {e.description}{tag}")
        print()
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from genbench.matrix import load_matrix

    m = load_matrix(args.file)
    cells = m.cells()
    print(f"{args.file}: valid matrix {m.name!r} with {len(m.blocks)} block(s) and {len(cells)} cell(s):")
    for c in cells:
        print(f"  {c.cell_id}  {c.generator.display} on {c.dataset}, seed {c.seed}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from genbench.matrix import load_matrix
    from genbench.runner import run_matrix

    m = load_matrix(args.matrix)
    summary = run_matrix(
        m, results=args.results, executor=args.executor, address=args.address, num_cpus=args.num_cpus,
        retry_failed=not args.no_retry,
    )
    if args.table:
        from genbench.reports.tables import print_comparison

        print_comparison(summary.store_path, matrix=m.name)
    print(summary.describe())
    return 1 if summary.failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from genbench.data import load_dataset
    from genbench.harness import train_run

    load_dataset(args.dataset)  # fail early on a bad name
    rec = train_run(
        args.generator, args.dataset, seed=args.seed, results_dir=args.results,
        model_overrides=_parse_set(args.set), train_overrides=_parse_set(args.train_set), device=args.device,
    )
    print(f"trained {args.generator} on {args.dataset} (seed {args.seed}): status {rec['status']}")
    for m in rec.get("metrics", []):
        print(f"  {m['protocol']}: {m['value']:.4f}")
    print(f"run folder: {rec.get('path', '')}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from genbench.scoring import format_table, score

    results = score(
        args.samples, args.reference, extractor=args.extractor, split=args.split,
        metrics=args.metrics.split(",") if args.metrics else None, seed=args.seed, n_boot=args.n_boot,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_table(results))
    return 0


def _reference_data(name: str) -> dict[str, Any] | None:
    """Real data for the report's pictures: 64 test images, or 2,000 test points of a 2-D mixture
    with its centres and true density (reports cannot import genbench.data: it imports torch)."""
    from genbench.data import load_dataset

    ds = load_dataset(name)
    x = ds.split("test").x
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else x
    if ds.info.kind == "image":
        return {"images": x[:64], "split": "test"}
    out: dict[str, Any] = {"points": x[:2000], "split": "test"}
    if getattr(ds, "centres", None) is not None:
        out.update(centres=ds.centres, std=ds.std, log_density=ds.log_density)
    return out


def cmd_report(args: argparse.Namespace) -> int:
    from genbench.reports.html import write_report
    results = args.results_dir or args.results
    cell_ids = None
    if args.cells_of:
        from genbench.matrix import load_matrix

        # every cell of the matrix, whichever run computed it (a matrix name alone loses reused cells)
        cell_ids = [c.cell_id for c in load_matrix(None if args.cells_of == "default" else args.cells_of).cells()]
    # a missing or empty index is rebuilt from the run folders; that and cells without a result are said
    out = write_report(results, out_dir=args.out, matrix=args.matrix, cell_ids=cell_ids, html=not args.no_html,
                       reference_data=None if args.no_images else _reference_data,
                       log=lambda n: print(f"note: {n}", file=sys.stderr))
    for p in out:
        print(p)
    html = [p for p in out if p.name == "report.html"]
    if html:
        print(f"report: {html[0].resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genbench",
        description="Evaluation and benchmarking for generative models: run the benchmark matrix, score "
        "external samples, report.",
    )
    p.add_argument("--version", action="version", version=f"genbench {__import__('genbench').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a benchmark matrix (default: the built-in one)")
    r.add_argument("matrix", nargs="?", help="matrix TOML file (default: built-in default matrix)")
    r.add_argument("--results", help="results directory (default $GENBENCH_RESULTS or ./results)")
    r.add_argument("--executor", choices=("local", "ray"), default="local")
    r.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    r.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray instance")
    r.add_argument("--no-retry", action="store_true", help="do not re-run cells that failed before")
    r.add_argument("--table", action="store_true", help="print the comparison table at the end")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("train", help="train one generator on one dataset and write its run folder")
    t.add_argument("--generator", required=True)
    t.add_argument("--dataset", default="digits")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--results", help="results directory")
    t.add_argument("--device", default=None, help="auto, cpu or cuda")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    t.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", help="training override")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("score", help="score a sample set against a reference with the sample-quality metrics")
    s.add_argument("--samples", required=True, help="npz:PATH, folder:PATH or a dataset name")
    s.add_argument("--reference", required=True, help="a dataset name (digits, mnist, ...) or npz:/folder:")
    s.add_argument("--extractor", default=None, help="domain:<dataset>, pixels or inception-v3-compat")
    s.add_argument("--split", default="test", help="reference split for built-in datasets")
    s.add_argument("--metrics", default=None, help="comma-separated metric names (default: all quality metrics)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-boot", type=int, default=0)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_score)

    rp = sub.add_parser("report", help="write the report of a results directory: CSV tables, a markdown summary "
                        "and a self-contained report.html")
    rp.add_argument("results_dir", nargs="?", metavar="RESULTS_DIR",
                    help="results directory (default $GENBENCH_RESULTS or ./results)")
    rp.add_argument("--results", help=argparse.SUPPRESS)  # the older spelling of RESULTS_DIR
    rp.add_argument("-o", "--out", help="output folder (default <results>/report); replaced as a whole")
    rp.add_argument("--matrix", help="only the runs recorded under this matrix name")
    rp.add_argument("--cells-of", metavar="MATRIX", help="only the cells of this matrix file ('default': the "
                    "built-in one), including finished cells it reused from other runs")
    rp.add_argument("--no-html", action="store_true", help="CSV and markdown only")
    rp.add_argument("--no-images", action="store_true", help="do not load the datasets for real-data pictures")
    rp.set_defaults(func=cmd_report)

    ls = sub.add_parser("ls", help="list datasets, generators, metrics and feature extractors")
    ls.add_argument("what", nargs="?", choices=("datasets", "generators", "metrics", "extractors"))
    ls.set_defaults(func=cmd_ls)

    v = sub.add_parser("validate", help="check a matrix file without running it and list its cells")
    v.add_argument("file")
    v.set_defaults(func=cmd_validate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished cells are kept, run again to continue", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:
        # bad input: a clear message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
