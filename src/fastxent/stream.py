"""Scoring predictions chunk by chunk, on one machine, without Dask.

Evaluation data often comes in blocks (batches of a model's output, slices of
a file larger than memory). An `Accumulator` takes them one at a time and keeps
only float64 running sums: the mean, sum and count of the loss, and the
accuracy, equal to the in-memory call on all the rows at once (within float64
rounding; the same bits for the same blocks in the same order).

>>> import numpy as np, fastxent.stream
>>> blocks = [(np.zeros((3, 4), np.float32), np.array([0, 1, 2])),
...           (np.zeros((2, 4), np.float32), np.array([3, 0]))]
>>> result = fastxent.stream.cross_entropy(blocks)
>>> round(result.mean, 6), result.count                  # log(4) over 5 rows
(1.386294, 5.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from . import _partials
from ._validate import (
    IGNORE_INDEX_DEFAULT,
    as_array,
    check_axis,
    check_ignore_index,
    check_label_smoothing,
    class_axis,
)

__all__ = ["Accumulator", "ChunkParts", "Result", "cross_entropy", "log_loss"]


class ChunkParts(NamedTuple):
    """One block's share of the scores (float64 sums)."""

    loss_sum: float  # the loss with reduction="sum"
    denominator: float  # what the mean divides by (summed class weights of counted rows)
    correct: float  # counted rows whose top prediction is the target class
    counted: float  # rows that count for the accuracy (not ignore_index)
    rows: int  # rows in the block, ignored or not


class Result(NamedTuple):
    """Scores of everything an Accumulator has seen."""

    mean: float  # the loss's (weighted) mean: sum / count
    sum: float
    count: float  # the mean's denominator: counted rows, or their summed class weights
    accuracy: float | None  # None unless asked for
    rows: int

    @property
    def perplexity(self) -> float:
        """exp(mean): the perplexity of a language model's cross-entropy."""
        return math.exp(self.mean) if self.mean < 709.0 else math.inf


def chunk_parts(predictions, target, *, from_logits=True, weight=None,
                ignore_index=IGNORE_INDEX_DEFAULT, label_smoothing=0.0, axis=None, accuracy=False,
                origin=None) -> ChunkParts:
    """The ChunkParts of one block (see Accumulator for the arguments; origin:
    the index of the block's first row in the whole, for error messages)."""
    scores = as_array(predictions, "predictions")
    target = as_array(target, "target")
    axis = class_axis(axis, scores.shape, target, "predictions")
    if from_logits:
        # the accuracy in the kernel's pass (its rows' maxima), not an argmax pass of its own
        parts = _partials.class_loss_parts(scores, target, weight=weight,
                                           ignore_index=ignore_index,
                                           label_smoothing=label_smoothing, axis=axis,
                                           origin=origin, accuracy=accuracy)
        loss_sum, denominator = parts.loss_sum, parts.denominator
        correct, counted = parts.correct, parts.counted
    else:
        loss_sum, denominator = _log_loss_parts(scores, target, weight, ignore_index, axis,
                                                origin)
        correct = counted = 0.0
        if accuracy:
            correct, counted = _hits(scores, target, ignore_index, axis)
    rows = target.size if target.dtype.kind in "iu" else target.size // max(1, scores.shape[axis])
    return ChunkParts(loss_sum, denominator, correct, counted, int(rows))


def _log_loss_parts(probs, target, weight, ignore_index, axis, origin):
    """(sum, denominator) of -log(p[target]), p clipped to [eps, 1 - eps] as
    scikit-learn's log_loss: only the targets' probabilities are read."""
    if probs.dtype.kind != "f":
        raise TypeError(f"predictions: expected probabilities, got dtype {probs.dtype}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"target: expected integer class indices, got dtype {target.dtype}")
    axis = check_axis(axis, probs.ndim, "predictions")
    n_classes = probs.shape[axis]
    batch_shape = probs.shape[:axis] + probs.shape[axis + 1:]
    if target.shape != batch_shape:
        raise ValueError(f"target: class indices must have shape {batch_shape} (predictions "
                         f"{probs.shape} without axis {axis}), got {target.shape}")
    ignore_index = check_ignore_index(ignore_index)
    denominator = _partials.class_denominator(target, n_classes, weight=weight,
                                              ignore_index=ignore_index, origin=origin)
    counted = target != ignore_index
    labels = np.where(counted, target, 0)
    p = np.take_along_axis(probs, np.expand_dims(labels, axis), axis).squeeze(axis)
    p = p[counted].astype(np.float64)
    outside = ~((p >= 0) & (p <= 1))
    if outside.any():
        k = int(np.argmax(outside))
        where = tuple(int(i) for i in np.argwhere(counted)[k])
        start = origin or (0,) * len(where)
        where = tuple(int(o) + i for o, i in zip(start, where))
        raise ValueError(f"predictions: {float(p[k])!r} at position {where} (the target class's "
                         "probability) is not in [0, 1]")
    eps = np.finfo(probs.dtype).eps
    loss = -np.log(np.clip(p, eps, 1 - eps))
    if weight is not None:
        loss *= np.asarray(weight, np.float64)[target[counted]]
    return float(np.sum(loss)), denominator


def _hits(scores, target, ignore_index, axis):
    """(rows whose top score is the target class, rows counted)."""
    top = np.argmax(scores, axis=axis)
    if target.dtype.kind in "iu":
        counted = target != ignore_index
        return float(np.count_nonzero((top == target) & counted)), float(np.count_nonzero(counted))
    return float(np.count_nonzero(top == np.argmax(target, axis=axis))), float(top.size)


class Accumulator:
    """Running scores over blocks of (predictions, targets).

    Parameters
    ----------
    from_logits : bool, default True
        Predictions are logits (the loss is fastxent.cross_entropy), or
        probabilities (the loss is scikit-learn's log loss: -log p[target],
        p clipped to [eps, 1 - eps] of its dtype).
    weight : array_like of shape (C,), optional
        A weight per class, as for cross_entropy.
    ignore_index : int, default -100
        Rows with this target count for nothing (loss nor accuracy).
    label_smoothing : float, default 0.0
        As for cross_entropy (logits only).
    axis : int, optional
        The class axis of each block; by default as for cross_entropy (the
        last for rank <= 2).
    accuracy : bool, default False
        Also count the rows whose top prediction is the target.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.stream import Accumulator
    >>> acc = Accumulator(accuracy=True)
    >>> acc.update(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]))
    >>> acc.update(np.array([[0.0, 3.0]]), np.array([1]))
    >>> r = acc.result()
    >>> r.rows, r.accuracy
    (3, 0.6666666666666666)
    """

    def __init__(self, *, from_logits: bool = True, weight=None,
                 ignore_index: int = IGNORE_INDEX_DEFAULT, label_smoothing: float = 0.0,
                 axis: int | None = None, accuracy: bool = False):
        if not from_logits and label_smoothing:
            raise ValueError("label_smoothing: applies to logits only (from_logits=True)")
        check_ignore_index(ignore_index)  # kept as given: the default is told apart (`is`)
        self.options = dict(from_logits=bool(from_logits), weight=weight,
                            ignore_index=ignore_index,
                            label_smoothing=check_label_smoothing(label_smoothing), axis=axis,
                            accuracy=bool(accuracy))
        self.loss_sum = self.denominator = self.correct = self.counted = 0.0
        self.rows = 0

    def update(self, predictions, target) -> None:
        """Adds a block: predictions (rows, ..., classes on `axis`) and their
        targets (class indices, or probabilities for logits). Errors name the
        position in the whole sequence of blocks (blocks follow each other
        along the first axis of the targets)."""
        target = as_array(target, "target")
        origin = (self.rows,) + (0,) * max(0, target.ndim - 1) if target.ndim else None
        self.add(chunk_parts(predictions, target, origin=origin, **self.options))

    def add(self, parts: ChunkParts) -> None:
        """Adds a block's ChunkParts computed elsewhere (another process, a Dask
        worker): in the blocks' order, the same bits as update()."""
        self.loss_sum += parts.loss_sum
        self.denominator += parts.denominator
        self.correct += parts.correct
        self.counted += parts.counted
        self.rows += parts.rows

    def result(self) -> Result:
        """The scores so far; the mean of nothing counted is NaN."""
        mean = self.loss_sum / self.denominator if self.denominator else math.nan
        accuracy = None
        if self.options["accuracy"]:
            accuracy = self.correct / self.counted if self.counted else math.nan
        return Result(mean, self.loss_sum, self.denominator, accuracy, self.rows)


def _run(blocks: Iterable, **options) -> Result:
    acc = Accumulator(**options)
    for predictions, target in blocks:
        acc.update(predictions, target)
    return acc.result()


def cross_entropy(blocks: Iterable, *, weight=None, ignore_index: int = IGNORE_INDEX_DEFAULT,
                  label_smoothing: float = 0.0, axis: int | None = None,
                  accuracy: bool = False) -> Result:
    """The cross-entropy of logits over an iterable of (logits, target) blocks.

    Parameters
    ----------
    blocks : iterable of (logits, target)
        Consumed once, one block at a time.
    weight, ignore_index, label_smoothing, axis, accuracy
        See Accumulator.

    Returns
    -------
    Result
        mean, sum, count (the mean's denominator), accuracy, rows.

    Raises
    ------
    ValueError, TypeError, IndexError
        As fastxent.cross_entropy, positions counted over all blocks.

    Examples
    --------
    >>> import numpy as np, fastxent.stream
    >>> r = fastxent.stream.cross_entropy([(np.zeros((2, 2)), np.array([0, 1]))])
    >>> round(r.mean, 6)
    0.693147
    """
    return _run(blocks, from_logits=True, weight=weight, ignore_index=ignore_index,
                label_smoothing=label_smoothing, axis=axis, accuracy=accuracy)


def log_loss(blocks: Iterable, *, weight=None, ignore_index: int = IGNORE_INDEX_DEFAULT,
             axis: int | None = None, accuracy: bool = False) -> Result:
    """The log loss of probabilities over an iterable of (probs, labels) blocks:
    -log p[label], p clipped to [eps, 1 - eps] as sklearn.metrics.log_loss
    (which this equals for integer labels 0..C-1 and rows summing to one).

    Parameters
    ----------
    blocks : iterable of (probs, labels)
    weight, ignore_index, axis, accuracy
        See Accumulator.

    Returns
    -------
    Result

    Raises
    ------
    IndexError
        A label outside [0, C) that is not ignore_index.
    ValueError
        A target class's probability outside [0, 1].

    Examples
    --------
    >>> import numpy as np, fastxent.stream
    >>> r = fastxent.stream.log_loss([(np.array([[0.5, 0.5]]), np.array([1]))])
    >>> round(r.mean, 6)
    0.693147
    """
    return _run(blocks, from_logits=False, weight=weight, ignore_index=ignore_index, axis=axis,
                accuracy=accuracy)
