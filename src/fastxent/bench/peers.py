"""The libraries fastxent is compared with, each behind an adapter.

An adapter makes an `Impl` for a workload: one call of the peer (what is
timed) and a conversion of its result to (mean loss, gradient of the mean
loss or None) for the check against the NumPy reference, outside the timing.
Every peer is optional: a library that cannot be imported is left out, with a
note saying why.
"""

import os
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .workloads import Workload

PeerName = Literal["torch", "torch-compile", "sklearn", "jax"]
PEERS: tuple[PeerName, ...] = ("torch", "torch-compile", "sklearn", "jax")

# What the check compares with the NumPy reference: (mean loss, gradient of
# the mean loss or None).
Reference = tuple[ArrayLike, ArrayLike | None]


@dataclass
class Impl:
    """One implementation of an op on one workload.

    `fn()` does one call (what is timed). `to_reference(result)` turns its
    result into (mean loss, gradient of the mean loss or None) for the check,
    outside the timing: peers with other conventions (per-sample losses,
    per-sample gradients) are converted there, not charged for it. A floor
    has `verify()` instead, which checks that it really moved the bytes.
    `allocates`: the call writes its gradient into newly allocated memory,
    so that its floor is the copy into fresh memory."""
    label: str
    fn: Callable[[], object]
    # Takes what fn returned, whose type is the peer's own (torch tensors,
    # JAX arrays, tuples of them): Any, the peers being imported at run time.
    to_reference: Callable[[Any], Reference] | None = None
    verify: Callable[[], bool] | None = None
    threads: int | None = None  # a floor's thread count (one where that is quicker)
    allocates: bool = False
    written: Callable[[], NDArray[np.uint8]] | None = None  # a floor's: its last call's bytes


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Peers:
    """The libraries compared against; None where not usable."""
    torch: ModuleType | None = None
    torch_compile: bool = False  # torch.compile usable (torch and a C++ compiler)
    sklearn_loss: ModuleType | None = None  # the module sklearn._loss.loss
    sklearn_version: str | None = None
    jax: ModuleType | None = None
    notes: list[str] = field(default_factory=list)  # why a peer is missing
    asked: tuple[str, ...] = PEERS

    def versions(self) -> dict[str, str | None]:
        """name -> version, None where not usable; peers not asked for left out."""
        torch_version = getattr(self.torch, "__version__", None)
        versions = {"torch": torch_version,
                    "torch-compile": torch_version if self.torch_compile else None,
                    "sklearn": self.sklearn_version,
                    "jax": getattr(self.jax, "__version__", None)}
        return {name: v for name, v in versions.items() if name in self.asked}

    def new_workload(self) -> None:
        """To be called before a workload's implementations are made: drops
        torch.compile's code for the workloads before (their functions are
        gone). Dynamo counts the compilations of one function (the wrapper
        of the loss, which every compilation shares) and beyond its limit (8)
        silently runs it eagerly: a run of many workloads would time eager
        PyTorch under torch.compile's name."""
        if self.torch_compile and self.torch is not None:
            self.torch._dynamo.reset()


def import_torch() -> ModuleType | None:
    """torch, or None where `import torch` does not work (never installed by us)."""
    try:
        import torch
    except (ImportError, OSError):
        return None
    return torch


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's Inductor would run, or None."""
    named = os.environ.get("CXX")
    for name in ([named] if named else []) + ["c++", "g++", "clang++"]:
        path = shutil.which(name)
        if path:
            return path
    return None


def import_peers(x64: bool = False, names: Collection[str] = PEERS) -> Peers:
    """The peers named in `names` that are usable here. `x64`: enable JAX's
    float64 (needed for float64 workloads; float32 arrays stay float32)."""
    peers = Peers(asked=tuple(names))
    if "torch" in names or "torch-compile" in names:
        peers.torch = import_torch()
        if peers.torch is None:
            peers.notes.append("torch: not importable")
        elif "torch-compile" in names:
            if not hasattr(peers.torch, "compile"):
                peers.notes.append("torch-compile: this torch has no torch.compile")
            elif cxx_compiler() is None:
                peers.notes.append("torch-compile: no C++ compiler (c++, g++, clang++) found")
            else:
                peers.torch_compile = True
    if "sklearn" in names:
        try:
            import sklearn
            from sklearn._loss import loss as sklearn_loss  # private API: may move
            sklearn_loss.HalfMultinomialLoss, sklearn_loss.HalfBinomialLoss  # noqa: B018
        except (ImportError, AttributeError) as exc:
            peers.notes.append(f"scikit-learn: not usable ({exc})")
        else:
            peers.sklearn_loss, peers.sklearn_version = sklearn_loss, sklearn.__version__
    if "jax" in names:
        try:
            import jax
            import jax.numpy  # noqa: F401
        except ImportError:
            peers.notes.append("jax: not importable")
        else:
            if x64:
                # jax's Config.update is unannotated
                jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]
            peers.jax = jax
    return peers


def _tensor(torch: ModuleType, a: Any) -> Any:
    """torch.from_numpy, bfloat16 (ml_dtypes) arrays included: the same memory."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _numpy(t: Any) -> Any:
    """A result tensor as NumPy (bfloat16 widened to float32, for the check)."""
    return t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()


def torch_eager(w: Workload, torch: ModuleType) -> Impl:
    """torch.nn.functional's loss on tensors sharing the workload's memory;
    forward+backward with a fresh gradient each call, as fastxent allocates one."""
    F = torch.nn.functional
    x = _tensor(torch, w.logits)
    t = _tensor(torch, w.target)
    if w.op == "xent-fwd":
        def fwd() -> object:
            with torch.no_grad():
                return F.cross_entropy(x, t)
        return Impl("torch", fwd, to_reference=lambda r: (_numpy(r), None))
    x.requires_grad_(True)
    loss_fn = F.cross_entropy if w.op == "xent" else F.binary_cross_entropy_with_logits

    def step() -> object:
        x.grad = None
        loss = loss_fn(x, t)
        loss.backward()
        return loss.detach(), x.grad
    return Impl("torch fwd+bwd", step, allocates=True,
                to_reference=lambda r: (_numpy(r[0]), _numpy(r[1])))


def torch_compiled(w: Workload, torch: ModuleType, threads: int) -> Impl:
    """torch.compile (Inductor: generated C++ with OpenMP) of the loss, the
    backward compiled with it, as a PyTorch user who wants speed writes it.
    Inductor bakes the thread count into the code it generates, so each
    thread count gets its own compilation (cpp.threads); it happens at the
    first call, which is the check's, outside the timing."""
    F = torch.nn.functional
    x = _tensor(torch, w.logits)
    t = _tensor(torch, w.target)
    loss_fn = F.binary_cross_entropy_with_logits if w.op == "bce" else F.cross_entropy
    compiled = torch.compile(loss_fn, dynamic=False, options={"cpp.threads": threads})
    if w.op == "xent-fwd":
        def fwd() -> object:
            with torch.no_grad():
                return compiled(x, t)
        return Impl("torch.compile", fwd, to_reference=lambda r: (_numpy(r), None))
    x.requires_grad_(True)

    def step() -> object:
        x.grad = None
        loss = compiled(x, t)
        loss.backward()
        return loss.detach(), x.grad
    return Impl("torch.compile fwd+bwd", step, allocates=True,
                to_reference=lambda r: (_numpy(r[0]), _numpy(r[1])))


def sklearn_losses(w: Workload, loss_module: ModuleType, threads: int) -> Impl:
    """scikit-learn's Cython losses (sklearn._loss, private): per-sample losses and
    per-sample gradients (no reduction) into preallocated buffers, with
    n_threads. Its "half" multinomial loss is exactly the cross-entropy of a
    sample (and the half binomial loss that of binary CE with logits): the
    check compares their mean, and the gradient divided by the sample count,
    with fastxent's mean reduction."""
    x = w.logits if w.op != "bce" else w.logits.reshape(-1)
    n = x.shape[0]
    loss_out = np.empty(n, dtype=x.dtype)
    if w.op == "bce":
        loss = loss_module.HalfBinomialLoss()
        y = w.target.reshape(-1)
    else:
        loss = loss_module.HalfMultinomialLoss(n_classes=x.shape[1])
        y = w.target.astype(x.dtype)  # sklearn wants float labels of the logits' dtype
    if w.op == "xent-fwd":
        def fwd() -> object:
            return loss.loss(y_true=y, raw_prediction=x, loss_out=loss_out, n_threads=threads)
        return Impl("sklearn HalfMultinomialLoss", fwd,
                    to_reference=lambda r: (np.mean(r, dtype=np.float64), None))
    grad_out = np.empty_like(x)

    def step() -> object:
        return loss.loss_gradient(y_true=y, raw_prediction=x, loss_out=loss_out,
                                  gradient_out=grad_out, n_threads=threads)
    name = "HalfBinomialLoss" if w.op == "bce" else "HalfMultinomialLoss"
    return Impl(f"sklearn {name}", step,
                to_reference=lambda r: (np.mean(r[0], dtype=np.float64),
                                        np.asarray(r[1], dtype=np.float64).reshape(w.shape) / n))


def jax_jit(w: Workload, jax: ModuleType) -> Impl:
    """jax.jit of the mean loss (xent-fwd) or of jax.value_and_grad of it, on
    arrays put on the CPU device once; every call waits for its result."""
    jnp = jax.numpy
    # x, t: JAX arrays, Any as jax is a module found at run time
    if w.op == "bce":
        def mean_loss(x: Any, t: Any) -> Any:
            return jnp.mean(jax.nn.softplus(x) - t * x)  # = log(1 + e^x) - t*x
    else:
        def mean_loss(x: Any, t: Any) -> Any:
            picked = jnp.take_along_axis(x, t[:, None], axis=-1)[:, 0]
            return jnp.mean(jax.nn.logsumexp(x, axis=-1) - picked)
    target: NDArray[np.integer[Any]] | NDArray[np.floating[Any]] = w.target
    if target.dtype.kind == "i":
        target = target.astype(np.int32)  # what JAX makes of labels without x64, silently
    cpu = jax.devices("cpu")[0]  # the CPU, even where JAX has a GPU: the same hardware
    x, t = jax.device_put(w.logits, cpu), jax.device_put(target, cpu)
    if x.dtype != w.logits.dtype:  # float64 without jax_enable_x64: not the same work
        raise RuntimeError(f"JAX made {x.dtype} of {w.dtype} logits (jax_enable_x64 is off)")
    if w.op == "xent-fwd":
        f = jax.jit(mean_loss)
        label = "jax jit"
    else:
        f = jax.jit(jax.value_and_grad(mean_loss))
        label = "jax jit value_and_grad"
    wait = getattr(jax, "block_until_ready", None) or (
        lambda r: jax.tree_util.tree_map(lambda a: a.block_until_ready(), r))

    def call() -> object:
        return wait(f(x, t))

    def to_reference(r: Any) -> Reference:
        if w.op == "xent-fwd":
            return np.asarray(r), None
        return np.asarray(r[0]), np.asarray(r[1])
    return Impl(label, call, to_reference=to_reference, allocates=w.op != "xent-fwd")


def make_peers(w: Workload, threads: int,
               peers: Peers) -> list[tuple[PeerName, Callable[[], Impl]]]:
    """(name, zero-argument maker of its Impl) for each usable peer on `w`.
    JAX only where `threads` is the number of usable CPUs: its thread pool is
    fixed when it is imported."""
    # Locals, not peers' attributes: mypy keeps a local's "is not None" in a lambda.
    torch, sklearn_loss, jax = peers.torch, peers.sklearn_loss, peers.jax
    makers: list[tuple[PeerName, Callable[[], Impl]]] = []
    if torch is not None and "torch" in peers.asked:
        makers.append(("torch", lambda: torch_eager(w, torch)))
    if peers.torch_compile and torch is not None:
        makers.append(("torch-compile", lambda: torch_compiled(w, torch, threads)))
    if sklearn_loss is not None:
        makers.append(("sklearn", lambda: sklearn_losses(w, sklearn_loss, threads)))
    if jax is not None and threads == usable_cpus():
        makers.append(("jax", lambda: jax_jit(w, jax)))
    return makers
