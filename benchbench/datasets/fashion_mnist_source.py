"""Materialise Fashion-MNIST as torchvision's raw IDX files, from its mirror or a Debian package.

``ensure_fashion_mnist(root)`` leaves the four IDX files under ``root/FashionMNIST/raw`` so that
``torchvision.datasets.FashionMNIST(root, train=..., download=False)`` loads them. Sources, in
order: torchvision's own download, then the Debian package ``dataset-fashion-mnist``: its files
under ``/usr/share/datasets/fashion-mnist/`` when it is installed, else the package fetched with
the user's apt configuration (``apt-get download``, no root needed; never a hard-coded host) and
unpacked with ``dpkg-deb``. Every copy is checked before it is moved into place: each file's
size, IDX header, the labels' per-class counts (6,000 per class in train, 1,000 in test) and the
sha256 of each uncompressed file, pinned below. Files are staged then moved with ``os.replace``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from benchbench.datasets.idx import (
    all_present,
    check_header,
    check_labels,
    check_size,
    idx_size,
    parse_idx,
    torchvision_raw_dir,
    write_atomic,
)
from benchbench.datasets.sources import (
    DOWNLOAD_TIMEOUT_S,
    ensure_from_sources,
    one_line,
    torchvision_download,
)
from benchbench.errors import DataError


class IdxFacts(NamedTuple):
    """What one uncompressed IDX file of the official copy is: its dimensions, per-class label
    counts (labels only) and sha256."""

    dims: tuple[int, ...]
    sha256: str
    counts: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        return idx_size(self.dims)


# measured on the files of dataset-fashion-mnist 0.0~git20200523.55506a9-1 (Debian bookworm);
# the labels' sha256 equal those of the upstream repository's own gzip files (whose md5s are
# torchvision's), the images' sizes and headers are Fashion-MNIST's
OFFICIAL: dict[str, IdxFacts] = {
    "train-images-idx3-ubyte": IdxFacts(
        (60000, 28, 28), "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": IdxFacts(
        (60000,), "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        (6000,) * 10),
    "t10k-images-idx3-ubyte": IdxFacts(
        (10000, 28, 28), "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": IdxFacts(
        (10000,), "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        (1000,) * 10),
}
IDX_FILES = tuple(OFFICIAL)
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SOURCES = ("torchvision", "debian")
_DESCRIBE = {"torchvision": "torchvision's download",
             "debian": f"the Debian package {DEBIAN_PACKAGE}"}


def raw_dir(root: Path) -> Path:
    """The folder torchvision's FashionMNIST reads: ``root/FashionMNIST/raw``."""
    return torchvision_raw_dir(root, "FashionMNIST")


def is_materialised(root: Path) -> bool:
    """True when all four uncompressed IDX files exist under ``raw_dir(root)``."""
    return all_present(raw_dir(root), IDX_FILES)


def ensure_fashion_mnist(
    root: Path,
    *,
    log: Callable[[str], None] = lambda message: None,
    sources: Sequence[str] = SOURCES,
    debian_dir: Path = DEBIAN_DIR,
    expected: Mapping[str, IdxFacts] | None = None,
) -> str:
    """Make Fashion-MNIST loadable from ``root``; return the source used (``"cache"`` if already
    there, after checking each file's size and header). ``expected``: the files' facts
    (default ``OFFICIAL``).

    Raises ``DataError`` naming every source's failure and how to fix it if none works.
    """
    root, expected = Path(root), OFFICIAL if expected is None else expected
    source = ensure_from_sources(
        "Fashion-MNIST", where=raw_dir(root), files=IDX_FILES, ready=lambda: is_materialised(root),
        attempts={"torchvision": lambda: _download_torchvision(root, expected),
                  "debian": lambda: _from_debian(root, debian_dir, expected)},
        describe=_DESCRIBE, sources=sources, log=log,
        fix=(f"install the Debian package (`apt-get install {DEBIAN_PACKAGE}`: its files go to "
             f"{debian_dir}) or make sure `apt-get download {DEBIAN_PACKAGE}` works, or put the "
             f"four IDX files ({', '.join(IDX_FILES)}) under {raw_dir(root)} and pass "
             "--data-dir / set BENCHBENCH_DATA"))
    if source == "cache":  # cheap: a truncated or foreign file is refused before torchvision
        for name, facts in expected.items():
            path = raw_dir(root) / name
            with path.open("rb") as fh:
                check_header(fh.read(4 * (1 + len(facts.dims))), facts.dims, str(path))
            check_size(path.stat().st_size, facts.dims, str(path))
    return source


def _download_torchvision(root: Path, expected: Mapping[str, IdxFacts]) -> None:
    """torchvision's download into a staging folder, checked, then moved into place."""
    raw_dir(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".torchvision-", dir=raw_dir(root)) as staging:
        torchvision_download("FashionMNIST", Path(staging), [{"train": True}, {"train": False}],
                             timeout=DOWNLOAD_TIMEOUT_S)
        files = {name: (raw_dir(staging) / name).read_bytes() for name in expected}
        install(files, root, expected)


def _from_debian(root: Path, debian_dir: Path, expected: Mapping[str, IdxFacts]) -> None:
    """The installed package's files, else the package fetched with apt and unpacked."""
    if all((Path(debian_dir) / f"{name}.gz").is_file() for name in expected):
        convert_debian_dir(Path(debian_dir), root, expected=expected)
        return
    with tempfile.TemporaryDirectory(prefix="benchbench-fashion-mnist-") as tmp:
        unpacked = unpack_deb(fetch_deb(Path(tmp)), Path(tmp) / "unpacked")
        convert_debian_dir(unpacked / DEBIAN_DIR.relative_to("/"), root, expected=expected)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900,
                              cwd=cwd)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataError(f"could not run `{' '.join(cmd)}`: {exc}") from exc
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise DataError(f"`{' '.join(cmd)}` exited {done.returncode}: {tail}")


def fetch_deb(dest_dir: Path) -> Path:
    """``apt-get download`` the package into ``dest_dir`` (the user's apt sources)."""
    _run(["apt-get", "download", DEBIAN_PACKAGE], cwd=dest_dir)
    debs = sorted(Path(dest_dir).glob(f"{DEBIAN_PACKAGE}_*.deb"))
    if not debs:
        raise DataError(f"`apt-get download {DEBIAN_PACKAGE}` produced no .deb in {dest_dir}")
    return debs[0]


def unpack_deb(deb: Path, dest_dir: Path) -> Path:
    """The package's file tree, unpacked under ``dest_dir`` with ``dpkg-deb -x``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(dest_dir)])
    return dest_dir


def convert_debian_dir(pkg_dir: Path, root: Path, *,
                       expected: Mapping[str, IdxFacts] = OFFICIAL) -> None:
    """Decompress the package's ``<name>.gz`` files, check them and install them."""
    files = {}
    for name in expected:
        path = Path(pkg_dir) / f"{name}.gz"
        try:
            with gzip.open(path, "rb") as fh:
                files[name] = fh.read()
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read {path}: {one_line(exc)}. Reinstall {DEBIAN_PACKAGE} "
                            "or delete the file") from exc
    install(files, root, expected, where=str(pkg_dir))


def install(files: Mapping[str, bytes], root: Path, expected: Mapping[str, IdxFacts] = OFFICIAL,
            *, where: str = "the download") -> None:
    """Check every file (size, header, label counts, sha256), then move all into place.

    Nothing is written unless every check passes."""
    check_files(files, expected, where=where)
    target = raw_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        for name, data in files.items():
            write_atomic(staging / name, data)
        for name in files:
            os.replace(staging / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_files(files: Mapping[str, bytes], expected: Mapping[str, IdxFacts], *,
                where: str) -> None:
    """Refuse, in one line naming the file, a copy that is not the expected Fashion-MNIST."""
    for name, facts in expected.items():
        what = f"{name} (from {where})"
        values = parse_idx(files[name], facts.dims, what)
        if facts.counts is not None:
            split = "train" if name.startswith("train") else "test"
            check_labels(values, facts.dims[0], facts.counts, split, "Fashion-MNIST")
        digest = hashlib.sha256(files[name]).hexdigest()
        if digest != facts.sha256:
            raise DataError(f"{what} has sha256 {digest[:16]}..., not Fashion-MNIST's "
                            f"{facts.sha256[:16]}...; the copy is corrupt or not the official "
                            "one. Delete it and fetch it again")
