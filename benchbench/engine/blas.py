"""Products whose bits do not depend on the thread count or on the stack around a member.

torch's CPU products go to MKL. By default MKL may split a product's sum over threads when the
result is small (the last layer's weight gradient, ``[10, 300]`` from 100 rows, on 2 threads)
but not when ``bmm`` hands each thread whole members, so one member alone, at 2 threads, was
rounded otherwise than the same member inside a stack or in a 1-thread worker. MKL's strict
conditional numerical reproducibility (``MKL_CBWR=AUTO,STRICT``) fixes the order of every
product's sums whatever the thread count: measured in the same run as the default mode by
``benchmarks/engine.py`` (benchmarks/README.md).

MKL reads the mode once, at its first product, so ``request()`` only sets the environment
variable (``import benchbench`` calls it: no torch import; a value the user set is kept), and
``reproducible()`` says whether this process got it. ``describe(device)`` is what a cell's
provenance records as its device: the thread count, the CPU kernels torch chose, and the mode.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings

MODE = "AUTO,STRICT"
CUBLAS_WORKSPACE = ":4096:8"  # the setting NVIDIA documents for deterministic cuBLAS
_STRICT = 0x10000  # MKL_CBWR_STRICT
_ALL = ~0  # MKL_CBWR_ALL: the whole setting


def request() -> None:
    """Ask MKL for strict reproducibility before it starts (keeps a ``MKL_CBWR`` already set),
    and cuBLAS for a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when its first handle is
    made): without one, products on CUDA may split their sums otherwise from call to call."""
    os.environ.setdefault("MKL_CBWR", MODE)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


@functools.cache
def _mkl_setting() -> int | None:
    """MKL's reproducibility setting in this process (after one product), or None without MKL
    or where its service functions are not reachable."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # MKL settles its mode at its first product
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib",
                                       "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return int(get(_ALL))


def reproducible() -> bool | None:
    """True when MKL runs in strict mode, False when it does not, None without MKL."""
    setting = _mkl_setting()
    return None if setting is None else bool(setting & _STRICT)


def mode_label() -> str:
    state = reproducible()
    return {True: "MKL strict", False: "MKL not strict", None: "BLAS not MKL"}[state]


@functools.cache
def warn_once_if_not_reproducible() -> None:
    if reproducible() is False:
        warnings.warn(f"MKL is not in strict reproducible mode (MKL_CBWR="
                      f"{os.environ.get('MKL_CBWR', 'unset')!r}, or MKL ran before benchbench was "
                      f"imported): this process's numbers may depend on its thread count; set "
                      f"MKL_CBWR={MODE} before starting Python", RuntimeWarning, stacklevel=2)


def describe(device: str) -> str:
    """A cell's device as provenance: ``cpu (2 threads, AVX512, MKL strict)``, or the GPU."""
    import torch

    if device == "cuda":
        cudnn = torch.backends.cudnn
        tf32 = [what for what, on in (("convolutions", cudnn.allow_tf32),
                                      ("products", torch.backends.cuda.matmul.allow_tf32)) if on]
        return (f"cuda ({torch.cuda.get_device_name()}, cuDNN "
                f"{'deterministic' if cudnn.deterministic else 'not deterministic'}, TF32 "
                f"{' and '.join(tf32) if tf32 else 'off'})")
    capability = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return (f"{device} ({threads} thread{'' if threads == 1 else 's'}, {capability}, "
            f"{mode_label()})")


@functools.cache
def _mkl_local_threads():
    """MKL's ``MKL_Set_Num_Threads_Local`` (this thread's MKL thread count; returns the previous
    one), or None where it is not reachable."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib",
                                       "libtorch_cpu.so"))
        fn = lib.MKL_Set_Num_Threads_Local
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
    return fn


class one_thread:  # noqa: N801 (a context manager, used like a function)
    """Run the products inside on one MKL thread (then restore the thread count): MKL's own
    thread-local setting where reachable, else torch's thread count."""

    def __enter__(self):
        import torch

        self.mkl = _mkl_local_threads()
        if self.mkl is not None:
            self.previous = self.mkl(1)
        else:
            self.previous = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        import torch

        if self.mkl is not None:
            self.mkl(self.previous)  # 0 restores MKL's own default
        else:
            torch.set_num_threads(self.previous)
        return False
