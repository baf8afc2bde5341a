"""keep_freed_memory: glibc's malloc keeps freed blocks; harmless where there is no glibc."""

from __future__ import annotations

import ctypes
import platform

import pytest

from benchbench.engine import memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc only")
def test_glibc_takes_the_settings():
    assert memory.keep_freed_memory() is True


def test_no_glibc_changes_nothing(monkeypatch):
    def missing(*args, **kwargs):
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert memory.keep_freed_memory() is False
