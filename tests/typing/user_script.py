"""A typed user's script: what a type checker infers from fastxent's public API.

Not a test module (pytest does not collect it): CI runs ``mypy --strict`` on
it, and tests/test_typing.py does where mypy is installed. Every public
function of the core is called once; ``assert_type`` pins what comes back, and
each misuse below is a type error, which ``warn_unused_ignores`` turns into a
failure of the run should the error ever go away. It also runs as a plain
script (``python tests/typing/user_script.py``).
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # mypy's own dependency
    from typing_extensions import assert_type

import fastxent
import fastxent.reference
import fastxent.sklearn

F32 = np.float32
F64 = np.float64
# the dtypes the types cannot tell apart (float16 input keeps float16, for some functions)
Scalar = np.float16 | np.float32 | np.float64
Array = NDArray[np.float16] | NDArray[np.float32] | NDArray[np.float64]
ScalarOrArray = np.floating[Any] | NDArray[np.floating[Any]]

rng = np.random.default_rng(0)
logits = rng.standard_normal((8, 5), dtype=np.float32)
logits64 = logits.astype(np.float64)
labels = rng.integers(0, 5, size=8)
probs = fastxent.softmax(logits)
binary_target = rng.random((8, 5))

# ---- losses from logits: the dtype follows a float32 or float64 array ----
assert_type(fastxent.cross_entropy(logits, labels), F32)
assert_type(fastxent.cross_entropy(logits64, labels, reduction="sum"), F64)
assert_type(fastxent.cross_entropy(logits, labels, reduction="none"), NDArray[F32])
# a list (or another dtype) comes back float16, float32 or float64: the types cannot tell
assert_type(fastxent.cross_entropy([[2.0, 0.5], [0.1, 1.0]], [0, 1]), Scalar)
assert_type(fastxent.cross_entropy([[2.0, 0.5], [0.1, 1.0]], [0, 1], reduction="none"), Array)

loss, grad = fastxent.cross_entropy_with_grad(logits, labels, label_smoothing=0.1,
                                              out=logits.copy())
assert_type(loss, F32)
assert_type(grad, NDArray[F32])  # an array, never None
losses, grad64 = fastxent.cross_entropy_with_grad(logits64, labels, reduction="none", axis=-1)
assert_type(losses, NDArray[F64])
assert_type(grad64, NDArray[F64])

assert_type(fastxent.binary_cross_entropy_with_logits(logits, binary_target), F32)
assert_type(fastxent.binary_cross_entropy_with_logits(logits, binary_target, pos_weight=np.ones(5),
                                                      reduction="none"), NDArray[F32])
bce_loss, bce_grad = fastxent.binary_cross_entropy_with_logits_with_grad(logits, binary_target)
assert_type(bce_loss, F32)
assert_type(bce_grad, NDArray[F32])

# ---- losses from probabilities and log-probabilities ----
assert_type(fastxent.binary_cross_entropy(probs, binary_target), F32)
p_loss, p_grad = fastxent.binary_cross_entropy_with_grad(probs, binary_target, weight=np.ones(5))
assert_type(p_grad, NDArray[F32])
log_probs = fastxent.log_softmax(logits64)
assert_type(fastxent.nll_loss(log_probs, labels, weight=np.ones(5)), F64)
assert_type(fastxent.nll_loss(log_probs, labels, reduction="none"), NDArray[F64])
nll, nll_grad = fastxent.nll_loss_with_grad(log_probs, labels, ignore_index=0)
assert_type(nll, F64)
assert_type(nll_grad, NDArray[F64])

# ---- linear + cross-entropy: d_bias only when linear_bias is given ----
hidden = rng.standard_normal((8, 3), dtype=np.float32)
head = rng.standard_normal((5, 3), dtype=np.float32)
assert_type(fastxent.linear_cross_entropy(hidden, head, labels, chunk_size=4), F32)
lm_loss, d_hidden, d_weight = fastxent.linear_cross_entropy_with_grad(hidden, head, labels)
assert_type(lm_loss, F32)
assert_type(d_weight, NDArray[F32])
*_, d_bias = fastxent.linear_cross_entropy_with_grad(hidden, head, labels,
                                                          linear_bias=np.zeros(5, np.float32))
assert_type(d_bias, NDArray[F32])

# ---- the class losses' options: the loss alone keeps its precise type; asking for a
# side output (return_lse=True, return_accuracy=True) gives a tuple to unpack ----
weights = np.ones(8)
assert_type(fastxent.cross_entropy(logits, labels, sample_weight=weights, z_loss=1e-4,
                                   softcap=30.0), F32)
assert_type(fastxent.cross_entropy(logits64, labels, reduction="none", softcap=None), NDArray[F64])
assert_type(fastxent.cross_entropy(logits, labels, return_lse=False, return_accuracy=False), F32)
ce_loss, ce_lse = fastxent.cross_entropy(logits, labels, return_lse=True)
assert_type(ce_loss, ScalarOrArray)
assert_type(ce_lse, ScalarOrArray)
assert_type(fastxent.cross_entropy(logits64, labels, return_accuracy=True),
            tuple[ScalarOrArray, ...])
assert_type(fastxent.cross_entropy(logits, labels, reduction="none", return_lse=True,
                                   return_accuracy=True),
            tuple[ScalarOrArray, ...])
assert_type(fastxent.cross_entropy([[2.0, 0.5]], [0], return_accuracy=True),
            tuple[ScalarOrArray, ...])
ce_loss, ce_grad, ce_lse, ce_accuracy = fastxent.cross_entropy_with_grad(
    logits, labels, z_loss=1e-4, return_lse=True, return_accuracy=True)
assert_type(ce_grad, ScalarOrArray)
assert_type(fastxent.cross_entropy_with_grad(logits64, labels, reduction="sum",
                                             sample_weight=weights),
            tuple[F64, NDArray[F64]])
assert_type(fastxent.nll_loss(log_probs, labels, sample_weight=weights), F64)
assert_type(fastxent.nll_loss(log_probs, labels, reduction="none", return_accuracy=True),
            tuple[ScalarOrArray, ScalarOrArray])
assert_type(fastxent.nll_loss_with_grad(log_probs, labels, return_accuracy=True),
            tuple[ScalarOrArray, ...])
assert_type(fastxent.linear_cross_entropy(hidden, head, labels, softcap=30.0, return_lse=True),
            tuple[ScalarOrArray, ...])
assert_type(fastxent.linear_cross_entropy(hidden, head, labels, sample_weight=weights), F32)
assert_type(fastxent.linear_cross_entropy_with_grad(hidden, head, labels, return_accuracy=True),
            tuple[ScalarOrArray, ...])
assert_type(fastxent.linear_cross_entropy_with_grad(hidden, head, labels, reduction="none",
                                                    linear_bias=np.zeros(5, np.float32),
                                                    return_lse=True, return_accuracy=True),
            tuple[ScalarOrArray, ...])
assert_type(fastxent.linear_cross_entropy_with_grad(hidden, head, labels, z_loss=1e-4),
            tuple[F32, NDArray[F32], NDArray[F32]])

def side_outputs_known_at_run_time(want_lse: bool) -> None:
    # a bool variable: the loss alone or a tuple, which the types cannot tell apart
    assert_type(fastxent.cross_entropy(logits, labels, return_lse=want_lse),
                ScalarOrArray | tuple[ScalarOrArray, ...])
    assert_type(fastxent.cross_entropy_with_grad(logits, labels, return_lse=want_lse),
                tuple[ScalarOrArray, ...])


side_outputs_known_at_run_time(True)

# ---- building blocks (scipy.special) ----
assert_type(fastxent.softmax(logits, axis=None), NDArray[F32])
assert_type(fastxent.log_softmax([1.0, 2.0]), Array)
assert_type(fastxent.logsumexp(logits64, axis=(0, 1)), F64 | NDArray[F64])
lse, sign = fastxent.logsumexp(logits, b=np.ones(5), return_sign=True)
assert_type(sign, Scalar | Array)
assert_type(fastxent.entropy(probs, base=2), F32 | NDArray[F32])
assert_type(fastxent.kl_divergence(probs, probs), F32 | NDArray[F32])

# ---- scikit-learn's log_loss, the reference twins, configuration ----
assert_type(fastxent.sklearn.log_loss(labels, fastxent.softmax(logits64), labels=range(5)),
            float)
assert_type(fastxent.reference.cross_entropy(logits, labels), F32)
ref_loss, ref_grad = fastxent.reference.cross_entropy_with_grad(logits, labels)
assert_type(ref_grad, NDArray[F32])
assert_type(fastxent.get_backend(), Literal["compiled", "numpy"])
fastxent.set_backend(fastxent.get_backend())
assert_type(fastxent.get_num_threads(), int)
fastxent.set_num_threads(fastxent.get_num_threads())
with fastxent.num_threads(1) as n:
    assert_type(n, int)
fastxent.show_config()
assert_type(fastxent.__version__, str)


# ---- misuse: each line is a type error (and mypy fails if it stops being one) ----
def misuse(x: NDArray[np.float32]) -> None:
    fastxent.cross_entropy(x, labels, reduction="meen")  # type: ignore[call-overload]
    fastxent.cross_entropy(x, labels, weight=None, dim=1)  # type: ignore[call-overload]
    fastxent.cross_entropy(x, labels, np.ones(5))  # type: ignore[call-overload]
    fastxent.nll_loss(x, labels, label_smoothing=0.1)  # type: ignore[call-overload]
    fastxent.binary_cross_entropy(x, labels, reduction=None)  # type: ignore[call-overload]
    fastxent.softmax(x, -1)  # type: ignore[call-overload]
    fastxent.set_backend("cuda")  # type: ignore[arg-type]
    fastxent.set_num_threads("4")  # type: ignore[arg-type]
    _, grad = fastxent.cross_entropy_with_grad(x, labels)
    grad.append(0.0)  # type: ignore[attr-defined]  # an ndarray, not a list
    fastxent.linear_cross_entropy_with_grad(x, x, labels, chunk_size="auto")  # type: ignore[call-overload]
    fastxent.cross_entropy(x, labels, z_loss="a")  # type: ignore[call-overload]
    fastxent.cross_entropy(x, labels, softcap="30")  # type: ignore[call-overload]
    fastxent.nll_loss(x, labels, return_lse=True)  # type: ignore[call-overload]  # no lse there
    fastxent.cross_entropy_with_grad(x, labels, return_accuracy=1)  # type: ignore[call-overload]
    loss_and_lse = fastxent.cross_entropy(x, labels, return_lse=True)
    loss_and_lse.reshape(-1)  # type: ignore[attr-defined]  # a tuple, not the loss
