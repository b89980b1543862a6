"""Backend choice, thread count and the configuration report."""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Literal, TypedDict

import numpy as np

from . import _numpy_kernels
from ._version import __version__

_compiled: ModuleType | None
try:
    from . import _kernels as _compiled
except ImportError as exc:  # no compiler at install time, or a broken build
    _compiled = None
    warnings.warn(
        f"fastxent: the compiled kernels cannot be imported ({exc}); "
        "using the pure-NumPy backend, which is much slower.",
        RuntimeWarning,
        stacklevel=2,
    )

BACKENDS = ("compiled", "numpy")
ISA_CAPS = ("baseline", "avx2", "avx512")


def max_threads() -> int:
    """The most threads fastxent accepts: 4 x the CPUs this process may use.

    More than that only slows the kernels down, and a count far above it
    (10**5) can make the OpenMP runtime end the process when the system
    cannot create so many threads. set_num_threads, num_threads and
    FASTXENT_NUM_THREADS are held to it.

    Returns
    -------
    int
        4 x the CPUs available to this process (its affinity mask where the
        system has one, else all of them) when fastxent was imported.

    Examples
    --------
    >>> from fastxent._config import max_threads
    >>> max_threads() >= 4
    True
    """
    return _MAX_THREADS


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


# Counted once, at import: the default thread count and the limit both come
# from it, and no call's thread count costs a system call.
_AVAILABLE_CPUS = _available_cpus()
_MAX_THREADS = 4 * _AVAILABLE_CPUS


def _env_threads(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        n = int(value)
        if 1 <= n <= max_threads():
            return n
    except ValueError:
        pass
    warnings.warn(f"fastxent: ignoring {name}={value!r}: expected a number of threads "
                  f"from 1 to {max_threads()}", stacklevel=3)
    return None


def _initial_backend() -> Literal["compiled", "numpy"]:
    wanted = os.environ.get("FASTXENT_BACKEND", "").strip().lower()
    if wanted and wanted not in BACKENDS:
        warnings.warn(f"fastxent: ignoring FASTXENT_BACKEND={wanted!r}: expected one of {BACKENDS}",
                      stacklevel=3)
        wanted = ""
    if wanted == "numpy" or _compiled is None:
        return "numpy"
    return "compiled"


def _initial_isa() -> str:
    """FASTXENT_ISA=baseline|avx2|avx512 caps the instruction set the kernels use."""
    if _compiled is None:
        return "none"
    cap = os.environ.get("FASTXENT_ISA", "").strip().lower() or "avx512"
    if cap not in ISA_CAPS:
        warnings.warn(f"fastxent: ignoring FASTXENT_ISA={cap!r}: expected one of {ISA_CAPS}",
                      stacklevel=3)
        cap = "avx512"
    return str(_compiled.select_isa(cap))


def _default_threads() -> int:
    """Threads without a fastxent setting, fixed at import: OMP_NUM_THREADS
    (its first entry), else the CPUs this process may use; 1 without OpenMP.
    Not the OpenMP runtime's live setting, which torch.set_num_threads changes
    (PyTorch and fastxent may share one libgomp)."""
    if _compiled is None or not _compiled.build_info().get("openmp_version"):
        return 1
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) >= 1:
        return min(int(first), max_threads())
    return _AVAILABLE_CPUS


class _State(TypedDict):
    backend: Literal["compiled", "numpy"]
    threads: int | None
    default_threads: int
    limit: int | None
    isa: str


_state: _State = {
    "backend": _initial_backend(),
    "threads": _env_threads("FASTXENT_NUM_THREADS"),
    "default_threads": _default_threads(),
    "limit": None,  # threadpoolctl's threadpool_limits, through _ThreadpoolctlController
    "isa": _initial_isa(),
}
_local = threading.local()  # num_threads() and reference overrides, per Python thread


# The extension marks the child of every fork(), also one made from C; only
# its OpenMP threads can hang there.
_forked = _compiled.forked if _compiled is not None else (lambda: False)


def get_backend() -> Literal["compiled", "numpy"]:
    """The implementation the public functions run on.

    Returns
    -------
    {"compiled", "numpy"}
        "compiled": the Cython + OpenMP kernels; "numpy": the pure-NumPy
        kernels of :mod:`fastxent.reference` (selected by :func:`set_backend`,
        by ``FASTXENT_BACKEND=numpy`` at import, or the fallback when the
        compiled extension cannot be imported).

    See Also
    --------
    set_backend : Selects the backend.
    show_config : The whole configuration.

    Examples
    --------
    >>> import fastxent
    >>> fastxent.get_backend() in ("compiled", "numpy")
    True
    """
    return _state["backend"]


def set_backend(name: Literal["compiled", "numpy"]) -> None:
    """Selects the implementation the public functions run on, for the whole
    process.

    Both give the same numbers (to rounding); "numpy" is the fallback and the
    tests' oracle, much slower.

    Parameters
    ----------
    name : {"compiled", "numpy"}
        "compiled" for the Cython + OpenMP kernels, "numpy" for the pure-NumPy
        kernels of :mod:`fastxent.reference`.

    Raises
    ------
    ValueError
        A `name` other than "compiled" and "numpy".
    RuntimeError
        "compiled" where the compiled extension is not available in this
        installation.

    See Also
    --------
    get_backend : The backend in use.

    Examples
    --------
    >>> import fastxent
    >>> previous = fastxent.get_backend()
    >>> fastxent.set_backend("numpy")
    >>> fastxent.get_backend()
    'numpy'
    >>> fastxent.set_backend(previous)
    """
    if name not in BACKENDS:
        raise ValueError(f"name: expected one of {BACKENDS}, got {name!r}")
    if name == "compiled" and _compiled is None:
        raise RuntimeError("name: the compiled backend is not available in this installation")
    _state["backend"] = name


def kernels() -> ModuleType:
    """The kernel module of the current backend."""
    backend = getattr(_local, "backend", None) or _state["backend"]
    return _compiled if backend == "compiled" and _compiled is not None else _numpy_kernels


@contextlib.contextmanager
def backend_for_this_thread(name: Literal["compiled", "numpy"]) -> Iterator[None]:
    """Runs the calls this Python thread makes inside the block on `name`."""
    previous = getattr(_local, "backend", None)
    _local.backend = name
    try:
        yield
    finally:
        _local.backend = previous


def _check_threads(n: object) -> int:
    # A bool is not a thread count (as for the integer options: docs/conventions.md).
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n: expected an integer number of threads, got {n!r}")
    if n < 1:
        raise ValueError(f"n: expected a positive integer number of threads, got {n!r}")
    if n > max_threads():
        raise ValueError(f"n: {n} threads is more than fastxent accepts, "
                         f"max_threads() = {max_threads()} (4 x the CPUs this process may use)")
    return int(n)


def _requested_threads() -> int:
    local: int | None = getattr(_local, "threads", None)
    if local is not None:
        return local
    if _state["threads"] is not None:
        return _state["threads"]
    return _state["default_threads"]


def get_num_threads() -> int:
    """The number of threads the compiled kernels use.

    Returns
    -------
    int
        The count set by :func:`num_threads` (in this Python thread),
        :func:`set_num_threads` or ``FASTXENT_NUM_THREADS``; else
        ``OMP_NUM_THREADS`` or the CPUs this process may use (read at import);
        at most a threadpoolctl limit in force, and at most ``max_threads()``
        (4 x the CPUs this process may use). Always 1 in a child made by
        ``fork()`` (from Python or from C), where OpenMP threads could hang, and
        in a build without OpenMP.

    Notes
    -----
    The OpenMP runtime's own setting (``omp_set_num_threads``,
    ``torch.set_num_threads``) does not change it, and fastxent never changes
    that setting: it passes its count to each parallel region. Small inputs use
    fewer threads than this; results are the same bits for any count.

    See Also
    --------
    set_num_threads : Sets the count for the process.
    num_threads : Sets it for a block of code.

    Examples
    --------
    >>> import fastxent
    >>> fastxent.get_num_threads() >= 1
    True
    """
    if _forked():
        return 1
    n = _requested_threads()
    limit = _state["limit"]
    return n if limit is None else min(n, limit)


def _register_with_threadpoolctl() -> None:
    """Lets threadpoolctl.threadpool_limits(n) (user_api "openmp" or all) limit
    the kernels' threads, as it limits the OpenMP runtimes: it sees the
    extension as an OpenMP library of internal_api "fastxent"."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if _compiled is None or _compiled.__file__ is None or not hasattr(threadpoolctl, "register"):
        return
    _compiled_file = _compiled.__file__

    class _ThreadpoolctlController(threadpoolctl.LibController):  # type: ignore[misc]
        user_api = "openmp"
        internal_api = "fastxent"
        filename_prefixes = (os.path.basename(_compiled_file).split(".")[0],)

        def _is_ours(self) -> bool:
            return bool(os.path.realpath(self.filepath) == os.path.realpath(_compiled_file))

        def get_num_threads(self) -> int | None:
            return get_num_threads() if self._is_ours() else None

        def set_num_threads(self, num_threads: int) -> None:
            if self._is_ours():
                # threadpool_limits restores the count it found on entry: one
                # not below the unlimited count lifts the limit.
                _state["limit"] = None if num_threads >= _requested_threads() else num_threads

        def get_version(self) -> str:
            return __version__

    threadpoolctl.register(_ThreadpoolctlController)


_register_with_threadpoolctl()

# Elements a thread should have at least: below, starting and waking threads
# costs more than it saves (and the kernels' blocks are about this size).
MIN_ELEMENTS_PER_THREAD = 32768


def threads_for(n_elements: int) -> int:
    """Threads for a call over n_elements: get_num_threads(), fewer for small
    inputs. Results do not depend on it."""
    if n_elements < 2 * MIN_ELEMENTS_PER_THREAD:
        return 1  # whatever the setting: small calls skip reading it (0.6 us of 13 at (32, 10))
    return min(get_num_threads(), n_elements // MIN_ELEMENTS_PER_THREAD)


def set_num_threads(n: int) -> None:
    """Sets the number of threads the compiled kernels use, for the whole
    process.

    Parameters
    ----------
    n : int
        From 1 to ``max_threads()``, 4 x the CPUs this process may use.

    Raises
    ------
    TypeError
        `n` not an integer (a bool, a float, a string, None).
    ValueError
        `n` below 1, or more than ``max_threads()``.

    See Also
    --------
    num_threads : The same for a block of code, in one Python thread.
    get_num_threads : The count in use.

    Examples
    --------
    >>> import fastxent
    >>> previous = fastxent.get_num_threads()
    >>> fastxent.set_num_threads(1)
    >>> fastxent.get_num_threads()
    1
    >>> fastxent.set_num_threads(previous)
    """
    _state["threads"] = _check_threads(n)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[int]:
    """A context manager: the calls this Python thread makes inside the block
    use `n` threads.

    Other Python threads keep their own count; the previous count comes back
    when the block ends, also on an exception.

    Parameters
    ----------
    n : int
        From 1 to ``max_threads()``, 4 x the CPUs this process may use.

    Yields
    ------
    int
        `n`.

    Raises
    ------
    TypeError
        `n` not an integer (a bool, a float, a string, None), raised when the
        block is entered.
    ValueError
        `n` below 1, or more than ``max_threads()`` (raised when the block is
        entered).

    See Also
    --------
    set_num_threads : The count for the whole process.

    Examples
    --------
    >>> import fastxent
    >>> with fastxent.num_threads(1):
    ...     fastxent.get_num_threads()
    1
    """
    n = _check_threads(n)
    previous = getattr(_local, "threads", None)
    _local.threads = n
    try:
        yield n
    finally:
        _local.threads = previous


def set_isa(cap: str) -> str:
    """Caps the instruction set of the compiled kernels ("baseline", "avx2",
    "avx512"); returns the one now in use. For tests and comparisons."""
    if cap not in ISA_CAPS:
        raise ValueError(f"cap: expected one of {ISA_CAPS}, got {cap!r}")
    if _compiled is None:
        raise RuntimeError("cap: the compiled backend is not available in this installation")
    _state["isa"] = str(_compiled.select_isa(cap))
    return _state["isa"]


def config() -> dict[str, Any]:
    """The facts show_config() prints, as a dict."""
    build = _compiled.build_info() if _compiled is not None else {}
    if build.get("openmp_version"):
        library = os.path.basename(build["openmp_library"]) or "unknown library"
        openmp = f"{library} (OpenMP {build['openmp_version']})"
    else:
        openmp = "none"
    return {
        "version": __version__,
        "backend": get_backend(),
        "compiled": _compiled is not None,
        "compiler": build.get("compiler", "none"),
        "openmp": openmp,
        "simd": _state["isa"],
        "threads": get_num_threads(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def show_config() -> None:
    """Prints the configuration: fastxent's version, the backend, the compiler
    and OpenMP runtime of the build, the SIMD path in use, the threads, and
    the NumPy, Python and machine it runs on.

    The same report as ``python -m fastxent info``; attach it to bug reports.

    See Also
    --------
    get_backend, get_num_threads

    Examples
    --------
    >>> import fastxent
    >>> fastxent.show_config()  # doctest: +ELLIPSIS
      version: ...
      backend: ...
    """
    for key, value in config().items():
        print(f"{key:>9}: {value}")
