"""The command line: --help, ls and validate (run/train/score/report are tested with their modules).

Generators come from baselines/ through an entry point; so that these tests do not depend on
which families exist yet, a test double is registered beside whatever GENERATORS.names() holds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from genbench.cli import main
from genbench.data import DATASETS
from genbench.generators import GENERATORS, GeneratorSpec
from genbench.metrics import METRICS

DUMMY = "test-dummy"


@dataclass(frozen=True)
class DummyConfig:
    width: int = 4
    lr: float = 0.1


@pytest.fixture
def dummy_generator(monkeypatch):
    GENERATORS.names()  # load the entry points first, so the double is added beside them
    spec = GeneratorSpec(name=DUMMY, config_cls=DummyConfig, build=lambda config, dataset: None, trained=False,
                         dataset_kinds=("image", "points"),
                         description="a test double")
    from genbench._registry import Entry

    monkeypatch.setitem(GENERATORS._entries, DUMMY,
                        Entry(DUMMY, spec, spec.description, {"trained": False}))
    return spec


@pytest.fixture
def dummy_metric(monkeypatch):
    METRICS.names()
    from genbench._registry import Entry

    monkeypatch.setitem(METRICS._entries, "test-metric", Entry(
        "test-metric", lambda real, fake: 0.0, "a test metric",
        {"higher_is_better": False, "needs": "features", "family": "quality"}))


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------------------------------
# --help, in fresh processes


COMMANDS = ("run", "train", "score", "report", "ls", "validate", "index", "fetch")


@pytest.mark.parametrize("how", ["console-script", "python-m"])
def test_help(how):
    exe = Path(sys.executable).parent / "genbench"
    cmd = [str(exe), "--help"] if how == "console-script" else [sys.executable, "-m", "genbench", "--help"]
    if how == "console-script" and not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: genbench") and p.stderr == ""
    for c in COMMANDS:
        assert re.search(rf"^\s+{c}\s+\S", p.stdout, re.M), f"{c} missing from --help"


def test_version_and_missing_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == "genbench 0.1.0"
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "required: COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ls", "validate"])
def test_subcommand_help(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: genbench {command}")


# ---------------------------------------------------------------------------------------------
# ls


def parse_ls(out: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line and not line.startswith(" "):
            assert line.endswith(":"), line
            current = line[:-1]
            sections[current] = []
        elif line.strip():
            assert current is not None
            sections[current].append(line.split()[0])
    return sections


def test_ls_lists_every_registry(capsys, dummy_generator, dummy_metric):
    rc, out, err = run_cli(capsys, "ls")
    assert rc == 0 and err == ""
    sections = parse_ls(out)
    assert list(sections)[:3] == ["datasets", "generators", "metrics"]
    assert sections["datasets"] == DATASETS.names()
    assert sections["generators"] == GENERATORS.names() and DUMMY in sections["generators"]
    assert sections["metrics"] == METRICS.names()
    try:
        from genbench.features import EXTRACTORS
    except ImportError:
        assert "extractors" not in sections
    else:
        assert sections["extractors"] == EXTRACTORS.names()
    # descriptions and tags come from the registries' metadata
    assert re.search(r"^  digits\s+scikit-learn's 1797 8x8 digits", out, re.M)
    assert re.search(rf"^  {DUMMY}\s+a test double \[control\]$", out, re.M)
    assert re.search(r"^  test-metric\s+a test metric \[quality, lower better\]$", out, re.M)


@pytest.mark.parametrize("section", ["datasets", "generators", "metrics", "extractors"])
def test_ls_one_section(capsys, section, dummy_generator):
    rc, out, _ = run_cli(capsys, "ls", section)
    assert rc == 0
    got = parse_ls(out)
    if section == "extractors":
        try:
            from genbench.features import EXTRACTORS  # noqa: F401
        except ImportError:
            assert got == {}
            pytest.skip("no feature extractor registry yet (genbench.features.EXTRACTORS)")
    assert list(got) == [section]
    if section == "datasets":
        assert got[section] == DATASETS.names()


def test_ls_unknown_section(capsys):
    with pytest.raises(SystemExit) as e:
        main(["ls", "widgets"])
    assert e.value.code == 2 and "invalid choice: 'widgets'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# validate


def generator_names() -> list[str]:
    """Up to two real generators (whatever baselines/ registers by now) plus the test double."""
    real = [n for n in GENERATORS.names() if n != DUMMY]
    return real[:2] + [DUMMY]


def write_matrix(path: Path, *, name="t", datasets=("digits", "mixture-ring"), generators=None, seeds=(0, 1),
                 evaluation="n_samples = 100\nfamilies = [\"quality\"]", extra_block="") -> Path:
    gens = generators if generators is not None else [f'"{g}"' for g in generator_names()]
    path.write_text(
        f'name = "{name}"\n\n[[block]]\ndatasets = {list(datasets)!r}\n'.replace("'", '"')
        + f"generators = [{', '.join(gens)}]\nseeds = {list(seeds)}\n{extra_block}"
        + f"[block.evaluation]\n{evaluation}\n"
    )
    return path


def validate_ids(capsys, path: Path) -> dict[tuple[str, str, int], str]:
    rc, out, err = run_cli(capsys, "validate", str(path))
    assert rc == 0, err
    ids = {}
    for line in out.splitlines()[1:]:
        m = re.fullmatch(r"  (\S+)  (\S+) on (\S+), seed (\d+)", line)
        assert m, line
        ids[(m[2], m[3], int(m[4]))] = m[1]
    return ids


def test_validate_lists_cells(tmp_path, capsys, dummy_generator):
    p = write_matrix(tmp_path / "m.toml")
    gens = generator_names()
    rc, out, err = run_cli(capsys, "validate", str(p))
    assert rc == 0 and err == ""
    n = 2 * len(gens) * 2
    assert out.splitlines()[0] == f"{p}: valid matrix 't' with 1 block(s) and {n} cell(s):"
    ids = validate_ids(capsys, p)
    assert set(ids) == {(g, d, s) for g in gens for d in ("digits", "mixture-ring") for s in (0, 1)}
    for (g, d, s), cid in ids.items():
        assert re.fullmatch(rf"{re.escape(g)}-{d}-s{s}-[0-9a-f]{{10}}", cid)
    assert len(set(ids.values())) == n


def test_cell_ids_are_deterministic_and_follow_content(tmp_path, capsys, dummy_generator):
    base = validate_ids(capsys, write_matrix(tmp_path / "a.toml"))
    # same content: same ids, whatever the file, its layout or the matrix name
    assert validate_ids(capsys, write_matrix(tmp_path / "b.toml", name="other")) == base
    same = write_matrix(tmp_path / "c.toml", evaluation='families = ["quality"]\nn_samples = 100  # reordered')
    assert validate_ids(capsys, same) == base
    # another seed list: the cells of the shared seed keep their ids, the new seed gets new ones
    seeds = validate_ids(capsys, write_matrix(tmp_path / "d.toml", seeds=(1, 2)))
    assert {k: v for k, v in seeds.items() if k[2] == 1} == {k: v for k, v in base.items() if k[2] == 1}
    assert not set(v for k, v in seeds.items() if k[2] == 2) & set(base.values())
    # evaluation settings are part of every cell's content
    ev = validate_ids(capsys, write_matrix(tmp_path / "e.toml", evaluation="n_samples = 101\nfamilies = [\"quality\"]"))
    assert set(ev) == set(base) and not set(ev.values()) & set(base.values())
    # so are model overrides and labels
    over = validate_ids(capsys, write_matrix(
        tmp_path / "f.toml", generators=[f'"{DUMMY}"', f'{{name = "{DUMMY}", label = "wide", model = {{width = 8}}}}']))
    assert over[(DUMMY, "digits", 0)] == base[(DUMMY, "digits", 0)]
    wide = over[("wide", "digits", 0)]
    assert wide.startswith("wide-digits-s0-") and wide not in base.values()


def test_duplicate_cells_run_once(tmp_path, capsys, dummy_generator):
    p = write_matrix(tmp_path / "m.toml", datasets=("digits", "digits"), generators=[f'"{DUMMY}"'], seeds=(0, 0))
    assert len(validate_ids(capsys, p)) == 1


def bad(capsys, path) -> str:
    rc, out, err = run_cli(capsys, "validate", str(path))
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_validate_unknown_dataset(tmp_path, capsys, dummy_generator):
    err = bad(capsys, write_matrix(tmp_path / "m.toml", datasets=("digts",)))
    assert "Unknown dataset 'digts'. Did you mean: digits" in err and "Available: cifar10" in err


def test_validate_unknown_generator(tmp_path, capsys, dummy_generator):
    err = bad(capsys, write_matrix(tmp_path / "m.toml", generators=['"test-dumy"']))
    assert "Unknown generator 'test-dumy'. Did you mean: test-dummy?" in err
    assert "Available: " in err and all(n in err for n in GENERATORS.names())


def test_validate_bad_toml_and_missing_file(tmp_path, capsys):
    p = tmp_path / "m.toml"
    p.write_text('name = "x"\n[[block]\ndatasets = ["digits"]\n')
    err = bad(capsys, p)
    assert f"{p}: not valid TOML" in err and "line 2" in err
    assert f"{tmp_path / 'nope.toml'}: config file not found" in bad(capsys, tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"extra_block": "seed = 3\n"}, "block[0]: unknown keys ['seed']; accepted: datasets, generators, seeds"),
        ({"evaluation": "n_sample = 10"}, "block[0].evaluation: unknown key 'n_sample'. Did you mean: n_samples?"),
        ({"evaluation": "n_samples = 'many'"}, "block[0].evaluation.n_samples: expected an integer, got 'many'"),
        ({"evaluation": "families = ['qualty']"}, "evaluation.families: unknown ['qualty']"),
        ({"evaluation": "reference = 'dev'"}, "evaluation.reference must be train, val or test, got 'dev'"),
        ({"seeds": ("a",)}, "block[0].seeds: expected a list of integers"),
        ({"generators": [f'{{name = "{DUMMY}", model = {{widht = 3}}}}']},
         f"{DUMMY}.model: unknown key 'widht'. Did you mean: width?"),
        ({"generators": [f'{{name = "{DUMMY}", model = {{lr = "high"}}}}']}, f"{DUMMY}.model.lr: expected a number"),
        ({"generators": [f'{{name = "{DUMMY}", colour = "red"}}']},
         "block[0].generators[0]: unknown key 'colour'"),
        ({"generators": ["3"]}, "block[0].generators[0]: expected a generator name or a table"),
    ],
)
def test_validate_bad_keys_and_values(tmp_path, capsys, dummy_generator, kwargs, message):
    p = write_matrix(tmp_path / "m.toml", **{"seeds": (0,), **kwargs})  # seeds ['a'] is a TOML literal string
    assert message in bad(capsys, p)


def test_validate_missing_required_and_top_level_mix(tmp_path, capsys):
    p = tmp_path / "m.toml"
    p.write_text('[[block]]\ndatasets = ["digits"]\n')
    assert "block[0]: missing 'generators'" in bad(capsys, p)
    p.write_text('seeds = [0]\n[[block]]\ndatasets = ["digits"]\ngenerators = ["x"]\n')
    assert "move ['seeds'] into a block" in bad(capsys, p)


def test_validate_single_block_at_top_level(tmp_path, capsys, dummy_generator):
    p = tmp_path / "flat.toml"
    p.write_text(f'datasets = ["digits"]\ngenerators = ["{DUMMY}"]\nseeds = [4]\n')
    rc, out, _ = run_cli(capsys, "validate", str(p))
    assert rc == 0 and "valid matrix 'flat' with 1 block(s) and 1 cell(s)" in out and "seed 4" in out


def test_validate_train_overrides(tmp_path, capsys, dummy_generator):
    harness = pytest.importorskip("genbench.harness", reason="the training harness is not written yet")
    if not hasattr(harness, "TrainConfig"):
        pytest.skip("genbench.harness.TrainConfig does not exist yet")
    p = write_matrix(tmp_path / "m.toml", generators=[f'{{name = "{DUMMY}", train = {{no_such_setting = 1}}}}'])
    assert f"{DUMMY}.train: unknown key 'no_such_setting'" in bad(capsys, p)


def test_validate_error_from_the_console_script(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text("name = \n")
    proc = subprocess.run([sys.executable, "-m", "genbench", "validate", str(p)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {p}: not valid TOML") and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# the built-in default matrix


def test_default_matrix_loads():
    text = resources.files("genbench").joinpath("matrices/default.toml").read_text()
    raw = tomllib.loads(text)
    wanted = {g if isinstance(g, str) else g["name"] for b in raw["block"] for g in b["generators"]}
    missing = sorted(wanted - set(GENERATORS.names()))
    if missing:
        pytest.skip(f"generators of the default matrix not registered yet: {', '.join(missing)}")
    from genbench.matrix import load_matrix

    m = load_matrix(None)
    assert m.name == "default" and m.source == "<built-in default>"
    n = sum(len(b["datasets"]) * len(b["generators"]) * len(b.get("seeds", [0])) for b in raw["block"])
    cells = m.cells()
    assert len(cells) == n and len({c.cell_id for c in cells}) == n
    assert [c.cell_id for c in load_matrix(None).cells()] == [c.cell_id for c in cells]


# ---------------------------------------------------------------------------------------------
# report


def _report_store(res):
    from genbench.results import MetricResult, Protocol
    from genbench.runs import RunFolder
    from genbench.store import ResultsStore

    store = ResultsStore(res)
    fid = Protocol("fid", space="dom", n={"real": 5, "fake": 10}, ref="test")
    for run_id, train, status in (("v20", {"steps": 20}, "done"), ("v400", {"steps": 400}, "done"),
                                  ("v400b", {"steps": 400}, "failed")):
        rf = RunFolder.open(res, run_id)
        rec = rf.write_result(status=status, error=None if status == "done" else "ValueError: boom",
                              metrics=[MetricResult("fid", 1.0 if train["steps"] == 20 else 2.0, fid,
                                                    higher_is_better=False)] if status == "done" else [],
                              generator="vae", family="vae", dataset="digits", seed=0 if run_id != "v400b" else 1,
                              kind="cell", matrix="m", cell_id=run_id,
                              config={"generator": {"name": "vae", "label": "", "model": {}, "train": train}})
        store.put(rec, path=rf.path)


def test_report_without_a_store_is_an_error(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "report", str(tmp_path / "nothing"))
    assert rc != 0 and "no results store" in err and not out
    assert not (tmp_path / "nothing").exists()


def test_report_writes_tables_and_html_and_says_where(tmp_path, capsys):
    res, out_dir = tmp_path / "r", tmp_path / "out"
    _report_store(res)
    rc, out, err = run_cli(capsys, "report", str(res), "-o", str(out_dir), "--no-images")
    assert rc == 0, err
    assert f"report: {(out_dir / 'report.html').resolve()}" in out
    text = (out_dir / "comparison.txt").read_text()
    assert "vae [steps=20]" in text and "vae [steps=400]" in text and "ValueError: boom" in text
    html = (out_dir / "report.html").read_text()
    assert "vae [steps=400]" in html and "ValueError: boom" in html


def test_report_rebuilds_a_deleted_index_and_says_so(tmp_path, capsys):
    res = tmp_path / "r"
    _report_store(res)
    for p in res.glob("index.sqlite*"):
        p.unlink()
    rc, out, err = run_cli(capsys, "report", str(res), "-o", str(tmp_path / "o"), "--no-html")
    assert rc == 0, err
    assert "note: the index" in err and "was missing: rebuilt it from 3 run folder(s)" in err
    assert "vae [steps=400]" in (tmp_path / "o" / "comparison.txt").read_text()


def test_report_of_an_unknown_matrix_is_an_error(tmp_path, capsys):
    res = tmp_path / "r"
    _report_store(res)
    rc, out, err = run_cli(capsys, "report", str(res), "--matrix", "nope", "--no-html")
    assert rc != 0 and "no runs of matrix 'nope'" in err and "matrices there: m" in err


def test_report_cells_of_a_matrix_file(tmp_path, capsys):
    from genbench.matrix import load_matrix
    from genbench.results import MetricResult, Protocol
    from genbench.runs import RunFolder
    from genbench.store import ResultsStore

    mfile = tmp_path / "m.toml"
    mfile.write_text('name = "new"\n[[block]]\ndatasets = ["digits"]\ngenerators = ["copycat", "heldout"]\n')
    cells = load_matrix(mfile).cells()
    res = tmp_path / "r"
    store = ResultsStore(res)
    fid = Protocol("fid", space="dom", n={"real": 5, "fake": 10}, ref="test")
    # the copycat cell was computed by another matrix ("old"); a third run belongs to no cell of m.toml
    for run_id, gen, matrix in ((cells[0].cell_id, "copycat", "old"), ("other-run", "gan", "new")):
        rf = RunFolder.open(res, run_id)
        store.put(rf.write_result(status="done", metrics=[MetricResult("fid", 3.0, fid)], generator=gen,
                                  dataset="digits", seed=0, kind="cell", matrix=matrix, cell_id=run_id,
                                  config={"generator": {"name": gen}}), path=rf.path)
    rc, out, err = run_cli(capsys, "report", str(res), "--cells-of", str(mfile), "-o", str(tmp_path / "o"),
                           "--no-html")
    assert rc == 0, err
    text = (tmp_path / "o" / "comparison.txt").read_text()
    assert "copycat" in text and "gan" not in text
    assert f"note: 1 of 2 cells have no result yet (not run, or still running): {cells[1].cell_id}" in err
