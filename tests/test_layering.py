"""The import rules of /work/shared/ARCHITECTURE.md, checked on the source with ``ast``.

* The library never imports ``baselines``, ``benchmarks`` or ``tests`` (generators are found
  through the registry / entry points).
* Lower levels never import higher ones:
  level 0 core, level 1 components, level 2 orchestration, level 3 entry points.
* Level-1 components do not import each other, with one deliberate exception: ``features`` and
  ``metrics`` may import ``genbench.data`` (the domain feature extractor trains on a dataset;
  coverage metrics read a dataset's known mixture). ``data`` therefore sits below them and must
  not import them back. ``reports`` may not import ``data`` (it would pull in torch).
* Importing ``genbench``, ``genbench.reports`` (and its modules) or ``genbench.store`` does not
  import torch.

Imports inside functions count (they run sooner or later); imports under ``if TYPE_CHECKING:``
do not (they never run). Modules that do not exist yet are simply not checked.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import genbench

PKG = Path(genbench.__file__).resolve().parent

LEVELS = {
    # level 0: core
    "_registry": 0, "_runtime": 0, "_io": 0, "_validation": 0, "_progress": 0, "_dense": 0, "config": 0,
    "protocols": 0,
    "results": 0,
    "runs": 0, "store": 0, "provenance": 0, "generators": 0,
    # level 1: components
    "data": 1, "features": 1, "metrics": 1, "reports": 1,
    # level 2: orchestration
    "harness": 2, "matrix": 2, "runner": 2, "evaluate": 2, "scoring": 2,
    # the local executor's worker processes (ARCHITECTURE.md puts executors at this level); _preload
    # imports runner and evaluate by name, for the fork server
    "_workers": 2, "_preload": 2,
    # level 3: entry points
    "api": 3, "cli": 3, "__main__": 3,
    # fetch: orchestration of data (data_root) and features (cache_root, weight formats)
    "fetch": 2,
    "loading": 2,
}
# level-1 imports across siblings that the design allows (importer -> imported)
# (reports -> metrics: a gallery drawn without precomputed neighbours uses the one exact k-NN search,
# imported inside the function so that importing genbench.reports still needs no torch)
SIBLING_OK = {("features", "data"), ("metrics", "data"), ("reports", "metrics")}
FORBIDDEN_TOP = {"baselines", "benchmarks", "tests"}
NON_CODE = {"matrices", "__pycache__"}


def source_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, pkg: Path = PKG) -> str:
    rel = path.relative_to(pkg.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def component(module: str) -> str | None:
    """``genbench.metrics.quality`` -> ``metrics``; ``genbench`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "genbench" else None


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(path: Path, pkg: Path = PKG) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import statement that can run."""
    mod = module_name(path, pkg)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for n in node.orelse:
                visit(n)
            return
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "genbench":  # from genbench import data  -> genbench.data
                out.extend((node.lineno, f"genbench.{a.name}") for a in node.names)
            else:
                out.append((node.lineno, target))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


ALL_IMPORTS = {module_name(p): (p, imports_of(p)) for p in source_files()}


def test_scanner_sees_all_kinds_of_import(tmp_path):
    """The checks below are only as good as the scanner: it must see nested, relative and aliased imports."""
    # parse a synthetic module as if it lived in genbench/metrics/ (without writing into the package)
    src = (
        "from typing import TYPE_CHECKING\n"
        "import genbench.cli as c\n"
        "from . import quality\n"
        "from ..harness import loop\n"
        "from genbench import reports, __version__\n"
        "if TYPE_CHECKING:\n    import baselines\nelse:\n    import numpy\n"
        "def f():\n    import benchmarks.x\n"
    )
    probe = tmp_path / "genbench" / "metrics" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(src)
    got = [m for _, m in imports_of(probe, tmp_path / "genbench")]
    assert got == ["typing", "genbench.cli", "genbench.metrics", "genbench.harness", "genbench.reports",
                   "genbench.__version__", "numpy", "benchmarks.x"]


def test_library_never_imports_baselines_tests_or_benchmarks():
    bad = [f"{p.relative_to(PKG.parent)}:{line} imports {m}" for p, imps in ALL_IMPORTS.values()
           for line, m in imps if m.split(".")[0] in FORBIDDEN_TOP]
    assert not bad, "the library must find generators through the registry, not import them:\n" + "\n".join(bad)


def test_every_module_has_a_level():
    """A new top-level module or package needs a level here (see ARCHITECTURE.md's layout)."""
    tops = {p.stem if p.is_file() else p.name for p in PKG.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and p.name not in NON_CODE)}
    tops = {t for t in tops if not t.startswith(".")}
    unknown = sorted(tops - set(LEVELS))
    assert not unknown, f"add {unknown} to LEVELS in tests/test_layering.py with the level from ARCHITECTURE.md"


def violations(imports: dict[str, tuple[Path, list[tuple[int, str]]]]) -> list[str]:
    bad = []
    for mod, (path, imps) in imports.items():
        src = component(mod)
        if src is None or src not in LEVELS:
            continue
        for line, target in imps:
            dst = component(target)
            if dst is None or dst not in LEVELS or dst == src:
                continue
            where = f"{path.name}:{line}"
            if LEVELS[dst] > LEVELS[src]:
                bad.append(f"{where}: {src} (level {LEVELS[src]}) imports {target} (level {LEVELS[dst]})")
            elif LEVELS[src] == LEVELS[dst] == 1 and (src, dst) not in SIBLING_OK:
                bad.append(f"{where}: level-1 component {src} imports its sibling {target}")
    return bad


def test_lower_levels_never_import_higher_ones():
    bad = violations({m: (p.relative_to(PKG.parent), imps) for m, (p, imps) in ALL_IMPORTS.items()})
    assert not bad, "import rules broken (ARCHITECTURE.md):\n" + "\n".join(bad)
    # the real tree has cross-component imports at every level for the rule to look at
    seen = {component(m) for m, (_, imps) in ALL_IMPORTS.items()
            if any(component(t) not in (None, component(m)) for _, t in imps)}
    assert {"data", "store", "runs", "cli"} <= seen


def test_layering_rules_catch_violations():
    """The rule is not vacuous: planted upward and sideways imports are reported, allowed ones are not."""
    planted = {
        "genbench.data.files": (Path("files.py"), [(1, "genbench.metrics.quality")]),  # sibling
        "genbench.store": (Path("store.py"), [(2, "genbench.cli")]),  # 0 -> 3
        "genbench.reports.tables": (Path("tables.py"), [(3, "genbench.data")]),  # reports may not use data
        "genbench.harness.loop": (Path("loop.py"), [(4, "genbench.api")]),  # 2 -> 3
        "genbench.features.domain": (Path("domain.py"), [(5, "genbench.data"), (6, "genbench._io")]),  # allowed
        "genbench.cli": (Path("cli.py"), [(7, "genbench.runner"), (8, "genbench.metrics")]),  # allowed
        "genbench.runs": (Path("runs.py"), [(9, "genbench.store"), (10, "numpy")]),  # allowed (same level)
    }
    bad = violations(planted)
    assert [b.split(":")[0] for b in bad] == ["files.py", "store.py", "tables.py", "loop.py"]


TORCH_FREE = """
import importlib, json, pkgutil, sys
out = {}
for name in sys.argv[1:]:
    before = 'torch' in sys.modules
    try:
        mod = importlib.import_module(name)
    except Exception as e:
        out[name] = 'import failed: %s: %s' % (type(e).__name__, e)
        continue
    out[name] = 'torch' in sys.modules and not before
    if name == 'genbench.reports':
        for m in pkgutil.iter_modules(mod.__path__):
            sub = 'genbench.reports.' + m.name
            try:
                importlib.import_module(sub)
            except Exception as e:  # a module still being written is reported, not fatal
                out[sub] = 'import failed: %s: %s' % (type(e).__name__, e)
                continue
            out[sub] = 'torch' in sys.modules
print(json.dumps(out))
"""


def test_light_modules_do_not_import_torch():
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE, "genbench", "genbench.store", "genbench.results",
                           "genbench.reports"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    for name in ("genbench", "genbench.store", "genbench.results", "genbench.reports"):
        assert res[name] is False, f"importing {name} imported torch ({res[name]})"
    pulled = [n for n, v in res.items() if v is True]
    assert not pulled, f"these reports modules import torch at module level: {pulled}"
    failed = {n: v for n, v in res.items() if isinstance(v, str)}
    if failed:
        pytest.skip(f"reports modules that do not import yet were not checked: {failed}")
