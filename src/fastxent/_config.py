"""Backend choice, thread count and the configuration report."""

import contextlib
import os
import platform
import threading
import warnings

import numpy as np

from . import _numpy_kernels
from ._version import __version__

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


def _available_cpus():
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


# Counted once, at import: the default thread count and the limit both come
# from it, and no call's thread count costs a system call.
_AVAILABLE_CPUS = _available_cpus()
_MAX_THREADS = 4 * _AVAILABLE_CPUS


def _env_threads(name):
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


def _initial_backend():
    wanted = os.environ.get("FASTXENT_BACKEND", "").strip().lower()
    if wanted and wanted not in BACKENDS:
        warnings.warn(f"fastxent: ignoring FASTXENT_BACKEND={wanted!r}: expected one of {BACKENDS}",
                      stacklevel=3)
        wanted = ""
    if wanted == "numpy" or _compiled is None:
        return "numpy"
    return "compiled"


def _initial_isa():
    """FASTXENT_ISA=baseline|avx2|avx512 caps the instruction set the kernels use."""
    if _compiled is None:
        return "none"
    cap = os.environ.get("FASTXENT_ISA", "").strip().lower() or "avx512"
    if cap not in ISA_CAPS:
        warnings.warn(f"fastxent: ignoring FASTXENT_ISA={cap!r}: expected one of {ISA_CAPS}",
                      stacklevel=3)
        cap = "avx512"
    return _compiled.select_isa(cap)


def _default_threads():
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


_state = {
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


def get_backend():
    """"compiled" or "numpy": the implementation the public functions run."""
    return _state["backend"]


def set_backend(name):
    """Selects "compiled" (the Cython kernels) or "numpy" (fastxent.reference)."""
    if name not in BACKENDS:
        raise ValueError(f"name: expected one of {BACKENDS}, got {name!r}")
    if name == "compiled" and _compiled is None:
        raise RuntimeError("name: the compiled backend is not available in this installation")
    _state["backend"] = name


def kernels():
    """The kernel module of the current backend."""
    backend = getattr(_local, "backend", None) or _state["backend"]
    return _compiled if backend == "compiled" else _numpy_kernels


@contextlib.contextmanager
def backend_for_this_thread(name):
    """Runs the calls this Python thread makes inside the block on `name`."""
    previous = getattr(_local, "backend", None)
    _local.backend = name
    try:
        yield
    finally:
        _local.backend = previous


def _check_threads(n):
    # A bool is not a thread count (as for the integer options: docs/conventions.md).
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n: expected an integer number of threads, got {n!r}")
    if n < 1:
        raise ValueError(f"n: expected a positive integer number of threads, got {n!r}")
    if n > max_threads():
        raise ValueError(f"n: {n} threads is more than fastxent accepts, "
                         f"max_threads() = {max_threads()} (4 x the CPUs this process may use)")
    return int(n)


def _requested_threads():
    local = getattr(_local, "threads", None)
    if local is not None:
        return local
    if _state["threads"] is not None:
        return _state["threads"]
    return _state["default_threads"]


def get_num_threads():
    """Threads the compiled kernels use: num_threads() / set_num_threads() /
    FASTXENT_NUM_THREADS if set, else OMP_NUM_THREADS or the CPUs this process
    may use (read at import), at most a threadpoolctl limit in force. The
    OpenMP runtime's own setting (omp_set_num_threads, torch.set_num_threads)
    does not change it, and fastxent never changes that setting. Always 1 in
    a child made by fork() (from Python or from C), where OpenMP threads
    could hang. At most max_threads()."""
    if _forked():
        return 1
    n = _requested_threads()
    limit = _state["limit"]
    return n if limit is None else min(n, limit)


def _register_with_threadpoolctl():
    """Lets threadpoolctl.threadpool_limits(n) (user_api "openmp" or all) limit
    the kernels' threads, as it limits the OpenMP runtimes: it sees the
    extension as an OpenMP library of internal_api "fastxent"."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if _compiled is None or not hasattr(threadpoolctl, "register"):
        return

    class _ThreadpoolctlController(threadpoolctl.LibController):
        user_api = "openmp"
        internal_api = "fastxent"
        filename_prefixes = (os.path.basename(_compiled.__file__).split(".")[0],)

        def _is_ours(self):
            return os.path.realpath(self.filepath) == os.path.realpath(_compiled.__file__)

        def get_num_threads(self):
            return get_num_threads() if self._is_ours() else None

        def set_num_threads(self, num_threads):
            if self._is_ours():
                # threadpool_limits restores the count it found on entry: one
                # not below the unlimited count lifts the limit.
                _state["limit"] = None if num_threads >= _requested_threads() else num_threads

        def get_version(self):
            return __version__

    threadpoolctl.register(_ThreadpoolctlController)


_register_with_threadpoolctl()

# Elements a thread should have at least: below, starting and waking threads
# costs more than it saves (and the kernels' blocks are about this size).
MIN_ELEMENTS_PER_THREAD = 32768


def threads_for(n_elements):
    """Threads for a call over n_elements: get_num_threads(), fewer for small
    inputs. Results do not depend on it."""
    if n_elements < 2 * MIN_ELEMENTS_PER_THREAD:
        return 1  # whatever the setting: small calls skip reading it (0.6 us of 13 at (32, 10))
    return min(get_num_threads(), n_elements // MIN_ELEMENTS_PER_THREAD)


def set_num_threads(n):
    """Sets the threads the compiled kernels use, for the whole process: from
    1 to max_threads() (4 x the CPUs this process may use); fewer or more
    raise ValueError, anything but an integer (a bool too) TypeError."""
    _state["threads"] = _check_threads(n)


@contextlib.contextmanager
def num_threads(n):
    """Uses `n` threads (1 to max_threads()) for the calls made by this Python
    thread inside the block."""
    n = _check_threads(n)
    previous = getattr(_local, "threads", None)
    _local.threads = n
    try:
        yield n
    finally:
        _local.threads = previous


def set_isa(cap):
    """Caps the instruction set of the compiled kernels ("baseline", "avx2",
    "avx512"); returns the one now in use. For tests and comparisons."""
    if cap not in ISA_CAPS:
        raise ValueError(f"cap: expected one of {ISA_CAPS}, got {cap!r}")
    if _compiled is None:
        raise RuntimeError("cap: the compiled backend is not available in this installation")
    _state["isa"] = _compiled.select_isa(cap)
    return _state["isa"]


def config():
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


def show_config():
    """Prints the version, backend, compiler, OpenMP runtime, SIMD path and threads."""
    for key, value in config().items():
        print(f"{key:>9}: {value}")
