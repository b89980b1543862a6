"""Everything timed on a workload: fastxent (allocating, and with out=), the
NumPy reference, the peers and the floors, and the check that they agree."""

from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
from numpy.typing import NDArray

import fastxent
from fastxent import reference

from .floors import floor_impl
from .peers import PEERS, Impl, Peers, Reference, make_peers
from .workloads import Workload

FloorName = Literal["floor", "floor-fresh"]

RTOL = 1e-4  # agreement required between every implementation and the reference
# float16 and bfloat16 results are rounded to their type (by each
# implementation, in its own way): a few ulps of it apart
RTOL_HALF = {"float16": 4 * 2.0**-11, "bfloat16": 4 * 2.0**-8}

# The implementations, in the order they are timed and shown, with the name
# each has in the plot's legend (the table's labels depend on the op).
IMPLEMENTATIONS: dict[str, str] = {
    "fastxent": "fastxent",
    "fastxent-out": "fastxent (out=)",
    "numpy-reference": "NumPy reference (1 thread)",
    "torch": "PyTorch (eager)",
    "torch-compile": "PyTorch (torch.compile)",
    "sklearn": "scikit-learn (sklearn._loss)",
    "jax": "JAX (jit)",
    "floor": "memory floor (multithreaded copy / read)",
    "floor-fresh": "memory floor, into fresh memory",
}
IMPL_NAMES = tuple(IMPLEMENTATIONS)
FLOORS: tuple[FloorName, ...] = ("floor", "floor-fresh")
assert set(PEERS) <= set(IMPL_NAMES)


class BenchError(RuntimeError):
    pass


def _fastxent_impls(w: Workload) -> dict[str, Impl]:
    x, t = w.logits, w.target
    if w.op == "xent-fwd":
        return {"fastxent": Impl("fastxent", lambda: fastxent.cross_entropy(x, t)),
                "numpy-reference": Impl("numpy reference", lambda: reference.cross_entropy(x, t))}
    name = "cross_entropy_with_grad" if w.op == "xent" else \
        "binary_cross_entropy_with_logits_with_grad"
    fast, ref = getattr(fastxent, name), getattr(reference, name)
    out = np.empty_like(x)
    return {"fastxent": Impl("fastxent", lambda: fast(x, t), allocates=True),
            "fastxent-out": Impl("fastxent out=", lambda: fast(x, t, out=out)),
            "numpy-reference": Impl("numpy reference", lambda: ref(x, t), allocates=True)}


def make_implementations(w: Workload, threads: int, peers: Peers | None = None,
                         warn: Callable[[str], object] | None = None) -> dict[str, Impl]:
    """name -> Impl for workload `w` with `threads` threads (passed explicitly
    where an implementation takes it; fastxent's and torch's counts are set by
    the caller, see timing.using_threads), in IMPL_NAMES' order. Buffers are
    allocated here, once, not in the calls. Peers missing from `peers`, or
    that fail to set up (reported through `warn`), are left out."""
    peers = peers or Peers(asked=())
    impls = _fastxent_impls(w)
    for name, make in make_peers(w, threads, peers):
        try:
            impls[name] = make()
        except Exception as exc:  # a peer's API changed: leave it out, say so
            if warn is not None:
                warn(f"{name} left out of {w.op} {w.name} {w.dtype}: "
                     f"{type(exc).__name__}: {exc}")
    impls["floor"] = floor_impl(w, threads)
    if w.op != "xent-fwd":
        impls["floor-fresh"] = floor_impl(w, threads, fresh=True)
    return {name: impls[name] for name in IMPL_NAMES if name in impls}


def floor_of(name: str, impls: Mapping[str, Impl]) -> FloorName:
    """The floor an implementation is measured against: the fresh-page copy
    for one that allocates its gradient, the copy (or read) otherwise."""
    if name == "floor-fresh" or (impls[name].allocates and "floor-fresh" in impls):
        return "floor-fresh"
    return "floor"


def check(impls: Mapping[str, Impl], label: str, dtype: str = "float32") -> None:
    """Runs each implementation once (this is also its first warm-up call,
    and torch.compile's compilation) and compares its loss and gradient with
    the NumPy reference; checks that each floor moved its bytes."""
    def as64(reference: Reference) -> tuple[float, NDArray[np.float64] | None]:
        loss, grad = reference
        return (float(np.asarray(loss, dtype=np.float64)),
                None if grad is None else np.asarray(grad, dtype=np.float64))

    def as_reference(result: object) -> Reference:
        return result if isinstance(result, tuple) else (result, None)

    rtol = RTOL_HALF.get(dtype, RTOL)
    ref_loss, ref_grad = as64(as_reference(impls["numpy-reference"].fn()))
    for name, impl in impls.items():
        if name == "numpy-reference":
            continue
        if impl.verify is not None:
            if not impl.verify():
                raise BenchError(f"{name} ({impl.label}) did not copy/read its bytes on {label}")
            continue
        result = impl.fn()
        loss, grad = as64((impl.to_reference or as_reference)(result))
        loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-30)
        problems = []
        # A peer's half-precision loss may overflow where fastxent's (summed in
        # float64) does not: PyTorch's float16 mean over 8192 x 1000 is inf.
        overflowed = dtype in RTOL_HALF and np.isinf(loss) and np.isfinite(ref_loss)
        if not loss_err <= rtol and not overflowed:  # also catches NaN
            problems.append(f"loss {loss!r} vs {ref_loss!r} (rel. error {loss_err:.2e})")
        if ref_grad is not None:
            if grad is None or grad.shape != ref_grad.shape:
                problems.append(f"gradient of shape {None if grad is None else grad.shape}, "
                                f"expected {ref_grad.shape}")
            else:
                scale = max(float(np.max(np.abs(ref_grad), initial=0.0)), 1e-30)
                grad_err = float(np.max(np.abs(grad - ref_grad), initial=0.0)) / scale
                if not grad_err <= rtol:
                    problems.append(f"gradient max rel. error {grad_err:.2e}")
        if problems:
            raise BenchError(f"{name} ({impl.label}) disagrees with the NumPy reference on "
                             f"{label}: {'; '.join(problems)}; allowed {rtol:g}")
