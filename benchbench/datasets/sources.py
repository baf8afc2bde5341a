"""What every dataset source shares: the cache folder, one-line reasons, torchvision's download
with a timeout, and the loop that tries sources in order and names each failure.

Used by ``mnist_source`` and ``fashion_mnist_source`` (and the CIFAR/SVHN loaders for the
download). Imports nothing heavy: torchvision loads when a download is attempted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from benchbench.errors import DataError

DOWNLOAD_TIMEOUT_S = 30.0


def default_data_dir() -> Path:
    """Where datasets live: ``$BENCHBENCH_DATA`` if set, else ``~/.cache/benchbench``."""
    env = os.environ.get("BENCHBENCH_DATA", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "benchbench"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one line of at most ``limit`` characters (a DataError without its type)."""
    text = str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def torchvision_download(cls_name: str, root: Path, calls: Sequence[Mapping],
                         timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """``torchvision.datasets.<cls_name>(root, download=True, **kwargs)`` for each of ``calls``,
    with a socket timeout so that an offline machine fails fast (the old timeout comes back)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cls_name)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:  # torchvision prints its progress: to stderr, so that stdout stays the command's
        with contextlib.redirect_stdout(sys.stderr):
            for kwargs in calls:
                cls(str(root), download=True, **kwargs)
    finally:
        socket.setdefaulttimeout(previous)


def ensure_from_sources(
    what: str,
    *,
    where: Path,
    files: Sequence[str],
    ready: Callable[[], bool],
    attempts: Mapping[str, Callable[[], None]],
    describe: Mapping[str, str],
    sources: Sequence[str],
    fix: str,
    log: Callable[[str], None],
) -> str:
    """Make ``what`` ready: ``"cache"`` if ``ready()`` already, else the name of the first of
    ``sources`` whose attempt leaves it ready. Raises one ``DataError`` naming every source's
    failure, then ``fix``."""
    unknown = [s for s in sources if s not in attempts]
    if unknown or not sources:
        raise DataError(f"unknown {what} source(s) {unknown or list(sources)}; "
                        f"choose from {tuple(attempts)}")
    if ready():
        log(f"{what} found under {where} (source: cache)")
        return "cache"
    failures: list[str] = []
    for i, source in enumerate(sources):
        log(f"trying {describe[source]}...")
        try:
            attempts[source]()
            if not ready():
                raise DataError(f"finished but {where} lacks some of {list(files)}")
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next source
            reason = one_line(exc)
            failures.append(f"{source}: {reason}")
            nxt = f"; falling back to {describe[sources[i + 1]]}" if i + 1 < len(sources) else ""
            log(f"{source} download failed: {reason}{nxt}")
            continue
        log(f"{what} ready under {where} (source: {source})")
        return source
    raise DataError(f"could not obtain {what} (" + "; ".join(failures) + f"). Fix: {fix}")
