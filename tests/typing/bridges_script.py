"""A typed user script of the framework bridges, for mypy (not collected by pytest).

mypy --strict checks it (see the type-check command of the CI script): every
public function and class of fastxent.torch, fastxent.jax, fastxent.keras,
fastxent.dask and fastxent.stream is called with the types a user passes,
`assert_type` pins what comes back, and the misuses marked
``# type: ignore[...]`` must stay errors (strict mode's warn_unused_ignores
fails the run if one stops being one).
"""

from __future__ import annotations

from typing import Any, assert_type

import dask.array as da
import jax
import jax.numpy as jnp
import numpy as np
import torch
from numpy.typing import NDArray

import fastxent.dask
import fastxent.jax
import fastxent.keras
import fastxent.stream
import fastxent.torch

FloatArray = NDArray[np.floating[Any]]

# ---------------------------------------------------------------- fastxent.torch
logits = torch.zeros(4, 3, requires_grad=True)
labels = torch.tensor([0, 2, 1, 0])
binary_target = torch.ones(4, 3)

assert_type(fastxent.torch.cross_entropy(logits, labels), torch.Tensor)
assert_type(fastxent.torch.cross_entropy(logits, labels, weight=torch.ones(3), ignore_index=1,
                                         reduction="none", label_smoothing=0.1,
                                         inplace_backward=False, backend="fastxent"),
            torch.Tensor)
assert_type(fastxent.torch.nll_loss(logits.log_softmax(1), labels, reduction="sum"),
            torch.Tensor)
assert_type(fastxent.torch.binary_cross_entropy(logits.sigmoid(), binary_target), torch.Tensor)
assert_type(fastxent.torch.binary_cross_entropy_with_logits(
    logits, binary_target, pos_weight=torch.ones(3), backend="torch"), torch.Tensor)

ce_module = fastxent.torch.CrossEntropyLoss(label_smoothing=0.1, backend="auto")
assert_type(ce_module.forward(logits, labels), torch.Tensor)
assert_type(fastxent.torch.NLLLoss(reduction="sum").forward(logits, labels), torch.Tensor)
assert_type(fastxent.torch.BCELoss().forward(logits.sigmoid(), binary_target), torch.Tensor)
assert_type(fastxent.torch.BCEWithLogitsLoss(pos_weight=torch.ones(3)).forward(
    logits, binary_target), torch.Tensor)
assert_type(ce_module.backend, fastxent.torch.Backend)

fastxent.torch.cross_entropy(logits, labels, reduction="meen")  # type: ignore[arg-type]
fastxent.torch.CrossEntropyLoss(backend="numpy")  # type: ignore[arg-type]
# the bridge's own options are keyword-only
fastxent.torch.cross_entropy(logits, labels, None, None, -100, None, "mean", 0.0,
                             False)  # type: ignore[call-arg]

# ---------------------------------------------------------------- fastxent.jax
x = jnp.zeros((4, 3))
y = jnp.array([0, 2, 1, 0])

assert_type(fastxent.jax.cross_entropy(x, y, weight=jnp.ones(3), reduction="none", axis=-1),
            jax.Array)
assert_type(fastxent.jax.cross_entropy(np.zeros((4, 3), np.float32), np.array([0, 1, 2, 0])),
            jax.Array)
assert_type(fastxent.jax.binary_cross_entropy_with_logits(x, jnp.ones((4, 3)),
                                                          pos_weight=jnp.ones(3)), jax.Array)
assert_type(fastxent.jax.softmax_cross_entropy_with_integer_labels(x, y, axis=-1), jax.Array)
assert_type(fastxent.jax.softmax_cross_entropy(x, jnp.ones((4, 3)) / 3, axis=None), jax.Array)
assert_type(fastxent.jax.sigmoid_binary_cross_entropy(x, jnp.ones((4, 3))), jax.Array)
assert_type(jax.grad(fastxent.jax.cross_entropy)(x, y), Any)

fastxent.jax.cross_entropy(x, y, reduction="meen")  # type: ignore[arg-type]
fastxent.jax.cross_entropy(x, y, None)  # type: ignore[call-arg]  # options are keyword-only
fastxent.jax.cross_entropy(x, [0, 1, 2, 0])  # type: ignore[arg-type]  # JAX takes no lists

# ---------------------------------------------------------------- fastxent.keras
probs = np.full((4, 3), 1 / 3, np.float32)
sparse = np.array([0, 2, 1, 0])

assert_type(fastxent.keras.binary_crossentropy(np.ones((4, 3)), probs), FloatArray)
assert_type(fastxent.keras.categorical_crossentropy(np.eye(3)[sparse], probs,
                                                    label_smoothing=0.1), FloatArray)
assert_type(fastxent.keras.sparse_categorical_crossentropy(sparse, probs, ignore_class=2),
            FloatArray)
# Keras's backend tensors come back as tensors of the same framework.
assert_type(fastxent.keras.sparse_categorical_crossentropy(labels, logits, from_logits=True),
            torch.Tensor)
assert_type(fastxent.keras.categorical_crossentropy(jnp.eye(3)[y], x, from_logits=True),
            jax.Array)
assert_type(fastxent.keras.binary_crossentropy(jnp.ones((4, 3)), x, from_logits=True),
            jax.Array)
# The loss classes subclass Keras's, which has no type information: Any.
assert_type(fastxent.keras.SparseCategoricalCrossentropy(from_logits=True), Any)
assert_type(fastxent.keras.CategoricalCrossentropy(), Any)
assert_type(fastxent.keras.BinaryCrossentropy(), Any)

fastxent.keras.sparse_categorical_crossentropy(  # type: ignore[call-overload]
    sparse, probs, ignore_class="2")

# ---------------------------------------------------------------- fastxent.dask
# dask ships incomplete annotations: mypy takes dask.array.Array as Any here.
d_logits = da.zeros((8, 3), chunks=(4, 3))
d_labels = da.zeros(8, chunks=4, dtype=np.int64)

assert_type(fastxent.dask.cross_entropy(d_logits, d_labels, reduction="sum"), da.Array)
assert_type(fastxent.dask.cross_entropy_with_grad(d_logits, d_labels),
            tuple[da.Array, da.Array])
assert_type(fastxent.dask.nll_loss(d_logits, d_labels, axis=-1), da.Array)
assert_type(fastxent.dask.nll_loss_with_grad(d_logits, d_labels), tuple[da.Array, da.Array])
assert_type(fastxent.dask.binary_cross_entropy(d_logits, np.zeros((8, 3))), da.Array)
assert_type(fastxent.dask.binary_cross_entropy_with_grad(d_logits, np.zeros((8, 3))),
            tuple[da.Array, da.Array])
assert_type(fastxent.dask.binary_cross_entropy_with_logits(d_logits, np.zeros((8, 3))),
            da.Array)
assert_type(fastxent.dask.binary_cross_entropy_with_logits_with_grad(
    d_logits, np.zeros((8, 3)), pos_weight=np.ones(3)), tuple[da.Array, da.Array])
assert_type(fastxent.dask.softmax(d_logits, axis=1), da.Array)
assert_type(fastxent.dask.log_softmax(d_logits), da.Array)
assert_type(fastxent.dask.logsumexp(d_logits), da.Array)
assert_type(fastxent.dask.entropy(d_logits, base=2.0), da.Array)
assert_type(fastxent.dask.kl_divergence(d_logits, d_logits), da.Array)
assert_type(fastxent.dask.log_loss(d_labels, d_logits, normalize=False), da.Array)

fastxent.dask.cross_entropy(d_logits, d_labels, reduction="meen")  # type: ignore[arg-type]

# ---------------------------------------------------------------- fastxent.stream
blocks = [(np.zeros((2, 3), np.float32), np.array([0, 1]))]
result = fastxent.stream.cross_entropy(blocks, accuracy=True)
assert_type(result, fastxent.stream.Result)
assert_type(result.mean, float)
assert_type(result.accuracy, float | None)
assert_type(result.perplexity, float)
assert_type(fastxent.stream.log_loss(blocks, ignore_index=-1), fastxent.stream.Result)

accumulator = fastxent.stream.Accumulator(from_logits=True, weight=np.ones(3), accuracy=True)
assert_type(accumulator.update(blocks[0][0], blocks[0][1]), None)
parts = fastxent.stream.chunk_parts(blocks[0][0], blocks[0][1], origin=(0,))
assert_type(parts, fastxent.stream.ChunkParts)
assert_type(accumulator.add(parts), None)
assert_type(accumulator.result(), fastxent.stream.Result)

fastxent.stream.cross_entropy(blocks, reduction="sum")  # type: ignore[call-arg]
