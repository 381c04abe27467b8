"""Comparison tables from the results store: models x metrics, per dataset and metric family.

Each column is one protocol (a metric with its extractor, sample counts, reference split and
fixed hyper-parameters); numbers of different protocols never share a column. Hyper-parameters
tuned per model on validation data (Parzen ``sigma``, GMM ``components``) are part of a row's
full protocol name but not of the column key: choosing them on validation *is* the protocol.

Each row is one model *configuration*: generator name, label, model overrides and training
overrides, read from the run's ``config``. Two configurations never share a row, whatever their
labels; the seeds of one configuration are the only thing averaged, and the table says how many
there are. Configurations that share a label are told apart by the override values that differ
(``vae [steps=20]`` / ``vae [steps=400]``). Cells show mean ± std over training seeds when there
are several, else the metric's own uncertainty (its kind is in the CSV's ``*_std_kind``).
Controls are reference rows, marked ``(control)``. Failed cells are listed with their error.
Wall-clock numbers (``train-seconds``) are not compared here: they are in the run list.

Where a dataset is too small for a metric to separate the models, the tables say so (see
:func:`_judge_separation` for the rule): a model cell within one combined standard deviation of its
column's best model, ``|m_a - m_best| <= TIE_Z * sqrt(s_a^2 + s_best^2)``, is marked ``≈`` (tied with
the best), and a column where every model is tied with the best, or where the models' range is
smaller than the real-vs-real row's own ±, gets a note ("at n=180 fid does not separate these
models ..."). Columns without a ± are never marked.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbench.results import Protocol
from genbench.runs import iter_run_folders, results_dir
from genbench.store import STORE_NAME, ResultsStore

# Metric name -> family, for grouping the printed tables (reports must not import the metric
# modules, which import torch; a name not listed here is shown under "other").
FAMILIES = {
    "quality": ("is", "is_real", "fid", "fid-inf", "kid", "precision", "recall", "density", "coverage", "vendi",
                "vendi_real"),
    "likelihood": ("exact-loglik", "iwae", "elbo", "bound-loglik", "ais", "parzen", "gmm", "true-loglik",
                   "exact-loglik-gap", "iwae-gap", "elbo-gap", "bound-loglik-gap", "parzen-gap", "gmm-gap"),
    "overfitting": ("nn-median-ratio", "copy-rate", "transform-copy-rate", "authenticity", "ct", "likelihood-gap"),
    "coverage": ("modes-captured", "hq-share", "mode-kl", "classes-covered", "class-kl"),
    "representation": ("probe_acc", "probe_acc_10pc", "rec_mse", "probe_acc_pixels", "probe_acc_10pc_pixels",
                       "probe_acc_random", "probe_acc_10pc_random"),
    "conditional": ("conditional_accuracy", "fid_per_class", "precision_per_class", "recall_per_class", "cas",
                    "fid_per_class_real", "precision_per_class_real", "recall_per_class_real", "cas_real"),
}
FAMILY_ORDER = ("quality", "likelihood", "overfitting", "coverage", "representation", "conditional", "training",
                "other")
_RANK = {m: i for fam in FAMILIES.values() for i, m in enumerate(fam)}
KIND_ORDER = ("exact", "lower-bound", "estimate", None)

#: a model cell whose difference from its column's best model is within TIE_Z combined standard deviations,
#: sqrt(s_a^2 + s_best^2), is not separated from it: one draw of each could rank the two the other way
TIE_Z = 1.0
TIE_MARK = "≈"
TIE_RULE = (f"{TIE_MARK}: not separated from the best model of its column at this n: |difference| <= {TIE_Z:g} x "
            "sqrt(s^2 + s_best^2), s being each cell's ± (one draw of each could rank them the other way); models "
            "only, columns without ± are never marked. A column note says where no model is separated from the best, "
            "or the models' range is below the real-vs-real row's own ±.")


def _row_family(metric: str, params: Any) -> str:
    try:
        fam = (json.loads(params) if isinstance(params, str) and params else {}).get("metric_family")
    except ValueError:
        fam = None
    return fam if fam in FAMILY_ORDER else metric_family(metric)


def metric_family(metric: str) -> str:
    if metric.startswith(("val_", "train_")):
        return "training"
    return next((f for f, names in FAMILIES.items() if metric in names), "other")


def is_wall_clock(metric: str, unit: Any = None) -> bool:
    """Times (``train_seconds``, unit ``s``) depend on the machine and its load, not on the model:
    they belong to the run list, never to a comparison column."""
    return unit == "s" or metric.endswith(("seconds", "_s"))


# ---------------------------------------------------------------------------------------------
# opening the store


class NoResultsError(FileNotFoundError):
    """There is nothing to report: no index and no run folders, or no runs matching the filter."""


def open_store(results: str | os.PathLike | None = None, *, store_path: str | os.PathLike | None = None,
               rebuild: bool = True) -> tuple[ResultsStore, list[str]]:
    """The results store of ``results`` and notes on what was done to open it.

    A missing or empty index next to run folders is rebuilt from them (the folders are the
    source of truth) and the notes say so; with neither an index nor run folders this raises
    :class:`NoResultsError` instead of creating an empty store (a report of nothing would look
    like a report).
    """
    root = results_dir(results)
    path = Path(store_path) if store_path is not None else root / STORE_NAME
    if store_path is not None and results is None:
        root = path.parent
    folders = [rf for rf in iter_run_folders(root) if rf.result_path.is_file()]
    notes: list[str] = []
    if not path.is_file():
        if not folders:
            raise NoResultsError(
                f"no results store at {path} and no finished run folders under {root / 'runs'}; run "
                "`genbench run` first, or give the results directory that holds index.sqlite.")
        if not rebuild:
            raise NoResultsError(f"no results store at {path}; `genbench report` rebuilds it from the run folders.")
        store = ResultsStore(root, path=path)
        n = store.rebuild()
        notes.append(f"the index {path} was missing: rebuilt it from {n} run folder(s) under {root / 'runs'}")
        return store, notes
    store = ResultsStore(root, path=path)
    if not store.runs():
        if folders and rebuild:
            n = store.rebuild()
            notes.append(f"the index {path} was empty: rebuilt it from {n} run folder(s) under {root / 'runs'}")
        elif not folders:
            raise NoResultsError(f"the results store {path} holds no runs (and {root / 'runs'} has no run folders); "
                                 "run `genbench run` first.")
    return store, notes


# ---------------------------------------------------------------------------------------------
# rows: one per model configuration


def _generator_config(run: dict[str, Any]) -> dict[str, Any]:
    """{name, label, model, train} of a run: from its config (a matrix cell or a training run),
    else what the record says (hand-written or older records)."""
    cfg = run.get("config") or {}
    extra = run.get("extra") or {}
    g = cfg.get("generator") if isinstance(cfg, dict) else None
    if isinstance(g, dict) and g.get("name"):
        return {"name": str(g["name"]), "label": str(g.get("label") or ""), "model": dict(g.get("model") or {}),
                "train": dict(g.get("train") or {})}
    name = extra.get("family") or run.get("generator") or "?"
    label = run.get("generator") if run.get("generator") != name else ""
    model = cfg.get("model_overrides") if isinstance(cfg, dict) else None
    train = cfg.get("train_overrides") if isinstance(cfg, dict) else None
    return {"name": str(name), "label": str(label or ""), "model": dict(model or {}), "train": dict(train or {})}


def config_key(gen: dict[str, Any]) -> str:
    """The row key: everything that makes a different model (name, label, model and train overrides)."""
    return json.dumps({k: gen.get(k) for k in ("name", "label", "model", "train")}, sort_keys=True, default=str)


def _fmt_override(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return ",".join(_fmt_override(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _flat_overrides(gen: dict[str, Any]) -> dict[str, str]:
    model, train = gen.get("model") or {}, gen.get("train") or {}
    both = set(model) & set(train)
    out = {(f"model.{k}" if k in both else k): _fmt_override(v) for k, v in model.items()}
    out.update({(f"train.{k}" if k in both else k): _fmt_override(v) for k, v in train.items()})
    return out


def row_labels(gens: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Unique display labels for configurations {key: generator config}.

    The label is the entry's label (else its name); configurations sharing one get the override
    values that differ between them, ``vae [steps=20]`` / ``vae [steps=400]`` (``default`` where
    one has no such override). Labels are made unique over the whole report, so one label always
    means one configuration.

    Examples
    --------
    >>> a = {"name": "vae", "label": "", "model": {}, "train": {"steps": 20}}
    >>> b = {"name": "vae", "label": "", "model": {}, "train": {"steps": 400}}
    >>> sorted(row_labels({"a": a, "b": b}).values())
    ['vae [steps=20]', 'vae [steps=400]']
    """
    by_display: dict[str, list[str]] = {}
    for key, g in gens.items():
        by_display.setdefault(g.get("label") or g["name"], []).append(key)
    out: dict[str, str] = {}
    for display, keys in by_display.items():
        if len(keys) == 1:
            out[keys[0]] = display
            continue
        flat = {k: _flat_overrides(gens[k]) for k in keys}
        names = {k: gens[k]["name"] for k in keys}
        opts = sorted({o for f in flat.values() for o in f})
        differing = [o for o in opts if len({flat[k].get(o, "default") for k in keys}) > 1]
        for k in keys:
            parts = [] if len(set(names.values())) == 1 else [names[k]]
            parts += [f"{o}={flat[k].get(o, 'default')}" for o in differing]
            out[k] = f"{display} [{', '.join(parts)}]" if parts else display
        # still equal (should not happen: the keys differ): number them in key order
        seen: dict[str, list[str]] = {}
        for k in sorted(keys):
            seen.setdefault(out[k], []).append(k)
        for lab, ks in seen.items():
            if len(ks) > 1:
                for i, k in enumerate(ks, 1):
                    out[k] = f"{lab} #{i}"
    return out


def load_runs(results: str | os.PathLike | None = None, *, matrix: str | None = None,
              cell_ids: list[str] | tuple[str, ...] | set[str] | None = None, store_path=None,
              store: ResultsStore | None = None) -> list[dict[str, Any]]:
    """Every run of the store (done, failed, running) that passes the filter, each with
    ``gen`` (its generator config), ``row_key``, ``row`` (unique display label), ``control``,
    ``timings``, ``control`` and ``family``; sorted by dataset, row and seed.

    ``cell_ids`` keeps exactly the runs of those cells, whichever matrix run computed them (a
    matrix reusing finished cells of another); ``matrix`` keeps the runs a matrix of that name
    recorded. Both may be given (both must hold).
    """
    if store is None:
        store = ResultsStore(results, path=store_path)
    runs = store.runs()
    if cell_ids is not None:
        wanted = {str(c) for c in cell_ids}
        runs = [r for r in runs if (r.get("cell_id") or r["run_id"]) in wanted or r["run_id"] in wanted]
    if matrix is not None:
        runs = [r for r in runs if r.get("matrix") == matrix]
    gens = {}
    for r in runs:
        extra = r.get("extra") or {}
        r["gen"] = _generator_config(r)
        r["row_key"] = config_key(r["gen"])
        r["control"] = bool(extra.get("control", False))
        r["timings"] = dict(extra.get("timings") or {})
        r["family"] = r["gen"]["name"]
        gens[r["row_key"]] = r["gen"]
    labels = row_labels(gens)
    for r in runs:
        r["row"] = labels[r["row_key"]] + (" (control)" if r["control"] else "")
    runs.sort(key=lambda r: (str(r.get("dataset")), r["control"], r["row"], r.get("seed") or 0, r["run_id"]))
    return runs


def load_frame(results: str | os.PathLike | None = None, *, matrix: str | None = None,
               cell_ids: list[str] | tuple[str, ...] | set[str] | None = None, store_path=None,
               store: ResultsStore | None = None):
    """The tidy long table (one row per run x metric) of finished runs, with ``control``,
    ``family``, ``column`` (the protocol's column key), ``fields`` (the protocol record),
    ``row_key`` (the model configuration) and ``row`` (its unique label).

    The runs that pass the filter (failed ones included) are in ``df.attrs["runs"]``.
    """
    if store is None:
        store = ResultsStore(results, path=store_path)
    runs = load_runs(matrix=matrix, cell_ids=cell_ids, store=store)
    by_id = {r["run_id"]: r for r in runs}
    df = store.to_frame()
    df = df[df["run_id"].isin(list(by_id))].copy()
    df["control"] = [by_id[rid]["control"] for rid in df["run_id"]]
    df["row_key"] = [by_id[rid]["row_key"] for rid in df["run_id"]]
    df["row"] = [by_id[rid]["row"] for rid in df["run_id"]]
    # a row names its family (the evaluator records its spec's); older rows fall back to the name list
    df["family"] = [_row_family(m, p) for m, p in zip(df["metric"], df["params"])]
    # the column key was written with each row from its protocol record (Protocol.column): the protocol
    # without its tuned hyper-parameters and seed; nothing here parses protocol names back
    df["column"] = [c if isinstance(c, str) and c else p for c, p in zip(df["column_key"], df["protocol"])]
    df["fields"] = [json.loads(f) if isinstance(f, str) else {} for f in df["protocol_fields"]]
    df = df[df["status"] == "done"].reset_index(drop=True)
    df, reference = _real_vs_real_rows(df)
    df.attrs["runs"] = runs
    df.attrs["reference_rows"] = reference  # table rows that are no run: real data against real data
    return df


def _real_vs_real_rows(df) -> tuple[Any, list[dict[str, Any]]]:
    """Move each run's real-vs-real results (``fid_real``... : a second real split against the reference
    at the models' n) into one reference row per dataset, under the columns of the model metrics, as the
    value a perfect generator would reach under the same protocol."""
    import pandas as pd

    if not len(df):
        return df, []
    real = [isinstance(m, str) and m.endswith("_real") and set(f.get("n") or {}) == {"real", "fake"}
            for m, f in zip(df["metric"], df["fields"])]
    if not any(real):
        return df, []
    rr = df[real].copy()
    rr["metric"] = [m.removesuffix("_real") for m in rr["metric"]]
    rr["fields"] = [{**f, "metric": m} for f, m in zip(rr["fields"], rr["metric"])]
    rr["column"] = [Protocol.from_dict(f).column for f in rr["fields"]]
    rr["family"] = [_row_family(m, p) for m, p in zip(rr["metric"], rr["params"])]
    splits = {}
    for ds, p in zip(rr["dataset"], rr["params"]):
        other = (json.loads(p) if isinstance(p, str) and p else {}).get("real_vs_real")
        splits.setdefault(ds, other)
    label = {ds: f"real data ({other or 'another split'} vs reference)" for ds, other in splits.items()}
    rr["row_key"] = [f"real-vs-real:{ds}" for ds in rr["dataset"]]
    rr["row"] = [label[ds] for ds in rr["dataset"]]
    rr["control"] = True
    extra = [{"run_id": f"real-vs-real:{ds}", "dataset": ds, "seed": s, "status": "done",
              "row_key": f"real-vs-real:{ds}", "row": label[ds], "control": True,
              "gen": {"name": "real data"}, "error": None, "reference": True}
             for ds, s in sorted({(ds, s) for ds, s in zip(rr["dataset"], rr["seed"])}, key=str)]
    return pd.concat([df[[not r for r in real]], rr], ignore_index=True), extra


# ---------------------------------------------------------------------------------------------
# the comparison model: columns, rows, cells


def _fmt(mean: float, std: float | None) -> str:
    f = f"{mean:.4g}" if abs(mean) < 1e5 else f"{mean:.3e}"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f
    return f"{f} ± {std:.2g}"


def _label_parts(fields: dict) -> dict[str, str]:
    """The protocol record's fields that can tell columns of one metric apart, as short texts."""
    space = str(fields.get("space") or "")
    out = {"space": space.split("-")[0] if space.startswith("domain-") else space,  # the hash is in the legend
           "n": ",".join(f"{k}:{v}" for k, v in (fields.get("n") or {}).items()),
           "ref": f"ref={fields['ref']}" if fields.get("ref") else "",
           "heldout": f"heldout={fields['heldout']}" if fields.get("heldout") else ""}
    out.update({f"fixed.{k}": f"{k}={v}" for k, v in fields.get("fixed") or ()})
    return out


_LABEL_PRIORITY = {"ref": 0, "heldout": 1, "space": 2, "fixed": 3, "n": 4}


def _labels(columns: list[tuple[str, str]], fields: dict[str, dict]) -> dict[str, str]:
    """Short labels for (metric, column key) pairs: the metric name, plus the protocol fields that
    tell apart columns of the same metric (e.g. ``parzen[ref=test]`` / ``parzen[ref=train]``)."""
    by_metric: dict[str, list[str]] = {}
    for metric, col in columns:
        by_metric.setdefault(metric, []).append(col)
    out = {}
    for metric, cols in by_metric.items():
        if len(cols) == 1:
            out[cols[0]] = metric
            continue
        parts = [_label_parts(fields.get(c, {})) for c in cols]
        keys = sorted({k for p in parts for k in p}, key=lambda k: (_LABEL_PRIORITY.get(k.split(".")[0], 9), k))
        differing = [k for k in keys if len({p.get(k, "") for p in parts}) > 1]
        # the fewest fields, in priority order, that tell the columns apart (a ref=train column also has
        # other sample counts: its ref says it)
        for i in range(1, len(differing) + 1):
            if len({tuple(p.get(k, "") for k in differing[:i]) for p in parts}) == len(parts):
                differing = differing[:i]
                break
        for c, p in zip(cols, parts):
            diff = [p[k] for k in differing if p.get(k)]
            out[c] = f"{metric}[{','.join(diff)}]" if diff else c
    return out


def _printed(metric: str, fields: dict[str, Any]) -> bool:
    """The printed table leaves out what the CSV keeps: likelihoods on the training subset (their
    train - test gaps are shown) and raw training losses (validation scores are shown)."""
    if (fields or {}).get("ref") == "train" and metric_family(metric) == "likelihood":
        return False
    return not metric.startswith("train_")


@dataclass
class Column:
    key: str  # the protocol's column key
    label: str  # short, unique within the dataset
    metric: str
    family: str
    fields: dict[str, Any]
    higher_is_better: bool | None
    target: float | None
    kind: str | None  # estimator kind (likelihoods)
    unit: str | None
    std_kinds: tuple[str, ...] = ()

    @property
    def direction(self) -> str:
        """``↑``, ``↓``, ``→1`` (a target value) or ``""``."""
        if self.target is not None:
            return f"→{self.target:g}"
        return {True: "↑", False: "↓"}.get(self.higher_is_better, "")  # type: ignore[arg-type]

    @property
    def direction_text(self) -> str:
        if self.target is not None:
            return f"best near {self.target:g}"
        return {True: "higher is better", False: "lower is better"}.get(self.higher_is_better,  # type: ignore
                                                                         "no direction")

    def score(self, v: float) -> float | None:
        """Lower is better; None when the column has no direction."""
        if self.target is not None:
            return abs(v - self.target)
        if self.higher_is_better is None:
            return None
        return -v if self.higher_is_better else v


@dataclass
class Value:
    mean: float
    std: float | None
    std_kind: str | None  # "seeds" when over training seeds, else the metric's own kind
    n_seeds: int
    seeds: tuple[int, ...] = ()
    best: bool = False
    warnings: tuple[str, ...] = ()  # what the metric said the reader must know (n < d, duplicates, ...)
    # True: not separated from the column's best model (marked ≈); False: judged and not tied (or the best);
    # None: not judged (a control, no ±, a column without a direction)
    tied: bool | None = None

    @property
    def text(self) -> str:
        return (TIE_MARK if self.tied else "") + _fmt(self.mean, self.std)


@dataclass
class Row:
    key: str
    label: str
    control: bool
    gen: dict[str, Any]
    seeds: tuple[int, ...]  # seeds with a finished run
    failed: list[tuple[Any, str]]  # (seed, error) of failed runs
    running: int = 0

    @property
    def seeds_text(self) -> str:
        s = str(len(self.seeds))
        if self.failed:
            s += f" (+{len(self.failed)} failed)"
        if self.running:
            s += f" (+{self.running} unfinished)"
        return s


@dataclass
class Table:
    dataset: str
    family: str
    group: str  # "" or, for likelihoods, the estimator kind and unit ("lower-bound, nats")
    columns: list[Column]
    rows: list[Row]
    values: dict[tuple[str, str], Value] = field(default_factory=dict)  # (row key, column key)
    # column key -> whether the column separates the models (judged columns only), and the note where it does not
    separates: dict[str, bool] = field(default_factory=dict)
    separation: dict[str, str] = field(default_factory=dict)

    @property
    def tie_marks(self) -> bool:
        """Whether this table carries a tie mark or a separation note (and so needs :data:`TIE_RULE`)."""
        return bool(self.separation) or any(v.tied for v in self.values.values())

    @property
    def title(self) -> str:
        return f"{self.family}" + (f" — {self.group}" if self.group else "")


def _first(values) -> Any:
    for v in values:
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return v
    return None


def build_tables(df, *, runs: list[dict[str, Any]] | None = None, printed: bool = False,
                 split_likelihoods: bool = False, training_losses: bool = True) -> dict[str, list[Table]]:
    """{dataset: [Table, ...]} in family order; every configuration with a run on the dataset
    (finished, failed or unfinished) is a row of every table of that dataset.

    ``split_likelihoods`` puts likelihood columns into one table per (estimator kind, unit):
    exact numbers, lower bounds and estimates are not comparable with each other.
    ``training_losses=False`` leaves out raw training losses (``train_*``: each family has its
    own loss, so they compare nothing across models); validation scores stay.
    """
    runs = runs if runs is not None else df.attrs.get("runs")
    if runs is None:  # a frame built elsewhere: its finished runs only
        runs = [{"run_id": rid, "dataset": ds, "seed": s, "status": "done", "row_key": rk, "row": rl,
                 "control": bool(c), "gen": {"name": rl}, "error": None}
                for rid, ds, s, rk, rl, c in df[["run_id", "dataset", "seed", "row_key", "row", "control"]]
                .drop_duplicates("run_id").itertuples(index=False)]
    runs = [*runs, *df.attrs.get("reference_rows", [])]
    if len(df):
        keep = [not is_wall_clock(m, u) for m, u in zip(df["metric"], df["unit"])]
        if printed:
            keep = [k and _printed(m, f) for k, m, f in zip(keep, df["metric"], df["fields"])]
        if not training_losses:
            keep = [k and not m.startswith("train_") for k, m in zip(keep, df["metric"])]
        df = df[keep]
    out: dict[str, list[Table]] = {}
    datasets = sorted({str(r.get("dataset")) for r in runs} | {str(d) for d in df["dataset"]})
    for ds in datasets:
        ds_runs = [r for r in runs if str(r.get("dataset")) == ds]
        rows: dict[str, Row] = {}
        for r in ds_runs:
            row = rows.setdefault(r["row_key"], Row(r["row_key"], r["row"], r["control"], r.get("gen") or {}, (), []))
            if r.get("status") == "done":
                row.seeds = tuple(sorted(set(row.seeds) | {r.get("seed")}, key=lambda s: (s is None, s)))
            elif r.get("status") == "failed":
                row.failed.append((r.get("seed"), r.get("error") or "failed (no error recorded)"))
            else:
                row.running += 1
        row_list = sorted(rows.values(), key=lambda r: (r.control, r.label))
        g = df[df["dataset"] == ds]
        if g.empty:
            out[ds] = [Table(ds, "runs", "", [], row_list)] if row_list else []
            continue
        fields = {c: f for c, f in zip(g["column"], g["fields"])}
        fam_of = {m: (f if f in FAMILY_ORDER else metric_family(m)) for m, f in zip(g["metric"], g["family"])}
        pairs = sorted({(m, c) for m, c in zip(g["metric"], g["column"])},
                       key=lambda p: (FAMILY_ORDER.index(fam_of.get(p[0], "other")), _RANK.get(p[0], 99), p))
        labels = _labels(pairs, fields)
        if len(set(labels.values())) < len(labels):  # the same short label in two families: use the keys
            labels = {c: c for _, c in pairs}
        columns: dict[str, Column] = {}
        for metric, col in pairs:
            sub = g[g["column"] == col]
            hib = _first(sub["higher_is_better"])
            columns[col] = Column(
                key=col, label=labels[col], metric=metric, family=fam_of.get(metric, "other"),
                fields=fields.get(col, {}),
                higher_is_better=None if hib is None else bool(hib), target=_first(sub["target"]),
                kind=_first(sub["estimator"]), unit=_first(sub["unit"]),
                std_kinds=tuple(sorted({str(k) for k in sub["std_kind"] if isinstance(k, str)})))
        values: dict[tuple[str, str], Value] = {}
        for (rk, col), sub in g.groupby(["row_key", "column"], sort=False):
            seeds = tuple(sorted({int(s) for s in sub["seed"] if s == s and s is not None}))
            per_seed = sub.groupby("seed", dropna=False)["value"].mean()
            mean = float(per_seed.mean())
            if len(per_seed) > 1:
                std, kind = float(per_seed.std(ddof=1)), "seeds"
            else:
                own = sub["std"].dropna()
                std = float(own.mean()) if len(own) else None
                kind = _first(sub["std_kind"]) if std is not None else None
            warns: list[str] = []
            for w in sub["warnings"]:
                for x in (json.loads(w) if isinstance(w, str) and w else []) or []:
                    if str(x) not in warns:
                        warns.append(str(x))
            values[(rk, col)] = Value(mean, std, kind, len(per_seed), seeds, warnings=tuple(warns))
        tables: list[Table] = []
        for fam in FAMILY_ORDER:
            cols = [c for c in columns.values() if c.family == fam]
            if not cols:
                continue
            groups: list[tuple[str, list[Column]]] = [("", cols)]
            if split_likelihoods and fam == "likelihood":
                by: dict[tuple, list[Column]] = {}
                for c in cols:
                    # train - test gaps are differences, not likelihoods: a group of their own
                    kind = "train-test gap" if c.metric.endswith("-gap") else (c.kind if c.kind in KIND_ORDER else None)
                    by.setdefault((kind, c.unit or ""), []).append(c)
                order = [*KIND_ORDER[:-1], "train-test gap", None]
                groups = [(", ".join(x for x in (k or "no estimator kind", u) if x), cs)
                          for (k, u), cs in sorted(by.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1]))]
            for group, cs in groups:
                keys = {c.key for c in cs}
                # a row with no number here is left out, unless it has none at all (failed, unfinished)
                t = Table(ds, fam, group, cs, [r for r in row_list if not r.seeds or any(
                    (r.key, k) in values for k in keys)])
                for c in cs:
                    for r in row_list:
                        v = values.get((r.key, c.key))
                        if v is not None:
                            t.values[(r.key, c.key)] = v
                    _mark_best(t, c)
                    _judge_separation(t, c)
                tables.append(t)
        out[ds] = tables
    return out


def all_rows(tables: list[Table]) -> list[Row]:
    """Every configuration of a dataset's tables (one with numbers in one family only, too), models first."""
    by_key = {r.key: r for t in tables for r in t.rows}
    return sorted(by_key.values(), key=lambda r: (r.control, r.label))


def _mark_best(t: Table, c: Column) -> None:
    """The best model value of a column (controls are references, not contestants); ties all marked."""
    scored = [(c.score(v.mean), rk) for (rk, ck), v in t.values.items()
              if ck == c.key and not next(r for r in t.rows if r.key == rk).control]
    scored = [(s, rk) for s, rk in scored if s is not None]
    if len(scored) < 2:
        return
    best = min(s for s, _ in scored)
    if all(s == best for s, _ in scored):  # all tied: nobody is best
        return
    for s, rk in scored:
        if s == best:
            t.values[(rk, c.key)].best = True


def _finite_std(v: Value) -> float | None:
    s = v.std
    return float(s) if s is not None and isinstance(s, int | float) and math.isfinite(s) and s >= 0 else None


def _n_text(fields: dict[str, Any]) -> str:
    """``n=180`` (one count for every role), ``n=train:359,test:359``, or ``this n``."""
    n = dict(fields.get("n") or {})
    if not n:
        return "this n"
    vals = set(n.values())
    return f"n={next(iter(vals))}" if len(vals) == 1 else "n=" + ",".join(f"{k}:{v}" for k, v in n.items())


def _spread_text(values: list[Value]) -> str:
    kinds = {v.std_kind for v in values}
    if kinds == {"subsamples"}:
        return "subsample spread"
    if kinds == {"seeds"}:
        return "spread over seeds"
    return "uncertainty (" + ", ".join(sorted(str(k) for k in kinds)) + ")"


def _judge_separation(t: Table, c: Column) -> None:
    """Mark the model cells of column ``c`` that the protocol does not separate from the best model.

    The rule, applied to model rows only (controls and the real-vs-real row are references):

    - the best model is the one with the best score (:meth:`Column.score`; ties of the score: the first);
    - a model cell with a ± (``std``) is *tied* with the best (``Value.tied``, shown ``≈``) when
      ``|m - m_best| <= TIE_Z * sqrt(s^2 + s_best^2)``: one draw of each could rank them the other
      way. Cells scoring as the best are not marked;
    - the column does *not separate* the models (``Table.separates[c] = False`` and a note in
      ``Table.separation``) when every model cell has a ±, there are at least two, and every one is
      tied with the best; or when the models' range (max - min of their means) is smaller than the
      real-vs-real row's own ±.

    Nothing is judged in a column without a direction, or where the best model has no ±: digits
    without an uncertainty are never marked. Nor where every model has the same value: such a column
    does not measure the models (the real data's own IS in ``is_real``, the true density's
    ``true-loglik``), so there is nothing to separate.
    """
    rows = {r.key: r for r in t.rows}
    models = [(rk, v) for (rk, ck), v in t.values.items() if ck == c.key and rk in rows and not rows[rk].control]
    if len(models) < 2 or any(c.score(v.mean) is None for _, v in models):
        return
    if len({v.mean for _, v in models}) == 1:
        return
    _, best = min(models, key=lambda m: c.score(m[1].mean))  # type: ignore[arg-type, return-value]
    s_best = _finite_std(best)
    if s_best is None:
        return
    best_score = c.score(best.mean)
    judged = []
    for _, v in models:
        s = _finite_std(v)
        if s is None:
            continue
        v.tied = c.score(v.mean) != best_score and abs(v.mean - best.mean) <= TIE_Z * math.hypot(s, s_best)
        judged.append(v)
    means = [v.mean for _, v in models]
    spread = max(means) - min(means)
    why = None
    if len(judged) == len(models) and all(v.tied or c.score(v.mean) == best_score for v in judged):
        why = f"differences within the {_spread_text(judged)}"
    else:
        rr = [v for (rk, ck), v in t.values.items() if ck == c.key and rk.startswith("real-vs-real:")]
        s_rr = _finite_std(rr[0]) if rr else None
        if s_rr is not None and spread < s_rr:
            why = f"the models' range {spread:.2g} is below the real-vs-real row's ± {s_rr:.2g}"
    t.separates[c.key] = why is None
    if why is not None:
        t.separation[c.key] = f"at {_n_text(c.fields)} {c.label} does not separate these models ({why})"


def comparison_tables(df, *, printed: bool = False, runs: list[dict[str, Any]] | None = None,
                      cell_ids: list[str] | tuple[str, ...] | set[str] | None = None,
                      ) -> dict[str, dict[str, tuple[object, dict[str, str]]]]:
    """{dataset: {family: (DataFrame models x metric labels, {label: protocol column key})}}.

    The first column, ``seeds``, is how many seeds of the configuration finished (and how many
    failed). Cells not separated from their column's best model start with ``≈``; each frame's
    ``attrs["separation"]`` is ``{label: note}`` for the columns that do not separate the models and
    ``attrs["tie_rule"]`` the rule (empty when nothing is marked); see :func:`_judge_separation`.
    ``printed=True`` keeps only the columns of the printed table (see :func:`_printed`).
    ``cell_ids`` keeps only those cells' runs (as :func:`load_frame`'s filter).
    """
    import pandas as pd

    runs = runs if runs is not None else df.attrs.get("runs")
    if cell_ids is not None:
        wanted = {str(c) for c in cell_ids}
        df = df[[(c if isinstance(c, str) and c else r) in wanted or r in wanted
                 for c, r in zip(df["cell_id"], df["run_id"])]]
        if runs is not None:
            runs = [r for r in runs if (r.get("cell_id") or r["run_id"]) in wanted or r["run_id"] in wanted]
    out: dict[str, dict[str, tuple[object, dict[str, str]]]] = {}
    for ds, tables in build_tables(df, runs=runs, printed=printed).items():
        per_family = {}
        for t in tables:
            data = {"seeds": [r.seeds_text for r in t.rows]}
            for c in t.columns:
                data[c.label] = [t.values[(r.key, c.key)].text if (r.key, c.key) in t.values else
                                 ("failed" if r.failed and not r.seeds else "") for r in t.rows]
            wide = pd.DataFrame(data, index=pd.Index([r.label for r in t.rows], name="generator"))
            wide.attrs["separation"] = {c.label: t.separation[c.key] for c in t.columns if c.key in t.separation}
            wide.attrs["tie_rule"] = TIE_RULE if t.tie_marks else ""
            per_family[t.family] = (wide, {c.label: c.key for c in t.columns})
        out[ds] = per_family
    return out


def failures(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("status") == "failed"]


def format_comparison(df, *, runs: list[dict[str, Any]] | None = None) -> str:
    import pandas as pd

    runs = runs if runs is not None else df.attrs.get("runs") or []
    parts = []
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 40,
                           "display.max_rows", None):
        for ds, fams in comparison_tables(df, printed=True, runs=runs or None).items():
            parts.append(f"=== {ds} ===")
            for fam, (table, legend) in fams.items():
                parts.append(f"--- {ds}: {fam} ---\n{table.to_string()}")
                sep = table.attrs.get("separation") or {}
                if table.attrs.get("tie_rule"):
                    parts.append("\n".join([table.attrs["tie_rule"], *(f"  {k:<24} {v}" for k, v in sep.items())]))
                if legend:
                    parts.append("protocols:\n" + "\n".join(f"  {k:<24} {v}" for k, v in legend.items()))
    failed = failures(runs)
    if failed:
        parts.append("FAILED cells (not in the numbers above):\n" + "\n".join(
            f"  {r['row']} on {r.get('dataset')}, seed {r.get('seed')} ({r['run_id']}): "
            f"{(r.get('error') or 'failed').splitlines()[0] if (r.get('error') or '').strip() else 'failed'}"
            for r in failed))
    if not parts:
        return "(no runs in the results store)"
    parts.append("Rows are model configurations (name, label, model and training overrides); `seeds` counts the "
                 "finished seeds averaged in a row. ± is the std over training seeds where there are several, else "
                 "the metric's own uncertainty (stderr over test examples for likelihoods, std over splits/subsets "
                 "for IS/KID); sigma and components are tuned per model on the validation split; likelihoods on "
                 "the training subset and training losses are in the CSV, times in the run list (genbench report).")
    return "\n\n".join(parts)


def print_comparison(store_path: str | os.PathLike, *, matrix: str | None = None,
                     cell_ids: list[str] | tuple[str, ...] | set[str] | None = None) -> None:
    """Print the comparison tables of the store at ``store_path``.

    ``cell_ids`` (the matrix's ``[c.cell_id for c in matrix.cells()]``) shows every cell of a
    matrix, including finished cells it reused from another matrix's run; ``matrix`` alone keeps
    only the runs recorded under that matrix name.
    """
    store_path = Path(store_path)
    store = ResultsStore(store_path.parent, path=store_path)
    print(format_comparison(load_frame(matrix=matrix, cell_ids=cell_ids, store=store)))


# ---------------------------------------------------------------------------------------------
# CSV


def long_csv_frame(df):
    """The tidy long table for CSV: one row per run x metric, the protocol record's fields as
    columns (space, n, ref, heldout, fixed, tuned, eval_seed, weights), the estimator ``kind``,
    ``unit``, the value and its uncertainty with the uncertainty's kind."""
    import pandas as pd

    f = df["fields"] if len(df) else []
    out = pd.DataFrame({
        "dataset": df["dataset"], "model": df["row"], "generator": df["generator"], "control": df["control"],
        "seed": df["seed"], "run_id": df["run_id"], "cell_id": df["cell_id"], "matrix": df["matrix"],
        "family": df["family"], "metric": df["metric"], "column": df["column"], "protocol": df["protocol"],
        "space": [x.get("space") for x in f], "n": df["n"],
        "ref": [x.get("ref") for x in f], "heldout": [x.get("heldout") for x in f],
        "fixed": [json.dumps(dict(x.get("fixed") or ()), default=str) if x.get("fixed") else "" for x in f],
        "tuned": [json.dumps(dict(x.get("tuned") or ()), default=str) if x.get("tuned") else "" for x in f],
        "eval_seed": [x.get("seed") for x in f], "weights": [x.get("weights") for x in f],
        "kind": df["estimator"], "unit": df["unit"], "higher_is_better": df["higher_is_better"],
        "target": df["target"], "value": df["value"], "uncertainty": df["std"], "uncertainty_kind": df["std_kind"],
        "ci_low": df["ci_low"], "ci_high": df["ci_high"], "model_config": df["row_key"],
    }, columns=None)
    return out


def wide_csv_frames(df, *, runs: list[dict[str, Any]] | None = None) -> dict[str, object]:
    """{dataset: DataFrame}: one row per model configuration, for every protocol column the mean
    (``<column>``), its uncertainty (``<column>_std``, numeric), what that is (``<column>_std_kind``:
    ``seeds`` or the metric's own), how many seeds it averages (``<column>_n_seeds``), whether the
    cell is not separated from the column's best model (``<column>_tied_with_best``: True / False,
    empty where not judged) and whether the column separates the models at all
    (``<column>_separates_models``, the same on every row; empty where not judged), by the rule of
    :func:`_judge_separation`.
    Failed seeds and their errors are in ``n_failed`` / ``errors``."""
    import pandas as pd

    out = {}
    for ds, tables in build_tables(df, runs=runs).items():
        if not tables:
            continue
        rows = all_rows(tables)
        data: dict[str, list[Any]] = {
            "model": [r.label for r in rows], "name": [r.gen.get("name") for r in rows],
            "label": [r.gen.get("label") for r in rows], "control": [r.control for r in rows],
            "model_overrides": [json.dumps(r.gen.get("model") or {}, sort_keys=True) for r in rows],
            "train_overrides": [json.dumps(r.gen.get("train") or {}, sort_keys=True) for r in rows],
            "n_seeds": [len(r.seeds) for r in rows], "n_failed": [len(r.failed) for r in rows],
            "errors": [" | ".join(f"seed {s}: {e.splitlines()[0] if e.strip() else e}" for s, e in r.failed)
                       for r in rows],
        }
        for t in tables:
            for c in t.columns:
                vals = [t.values.get((r.key, c.key)) for r in rows]
                data[c.key] = [v.mean if v else None for v in vals]
                data[f"{c.key}_std"] = [v.std if v else None for v in vals]
                data[f"{c.key}_std_kind"] = [v.std_kind if v else None for v in vals]
                data[f"{c.key}_n_seeds"] = [v.n_seeds if v else 0 for v in vals]
                data[f"{c.key}_tied_with_best"] = [v.tied if v else None for v in vals]
                data[f"{c.key}_separates_models"] = [t.separates.get(c.key)] * len(rows)
        out[ds] = pd.DataFrame(data)
    return out


def safe_file_part(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s).strip("._") or "dataset"


def write_report(results: str | os.PathLike | None = None, *, out_dir: str | os.PathLike | None = None,
                 matrix: str | None = None, cell_ids: list[str] | tuple[str, ...] | set[str] | None = None,
                 html: bool = True, reference_data=None, notes: list[str] | None = None,
                 log=None) -> list[Path]:
    """Write the report of a results directory; see :func:`genbench.reports.html.write_report`."""
    from genbench.reports.html import write_report as _write

    return _write(results, out_dir=out_dir, matrix=matrix, cell_ids=cell_ids, html=html,
                  reference_data=reference_data, notes=notes, log=log)
