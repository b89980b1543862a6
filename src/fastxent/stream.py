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
from typing import Any, NamedTuple, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _losses, _partials
from ._kinds import Scores
from ._validate import (
    IGNORE_INDEX_DEFAULT,
    as_array,
    check_axis,
    check_ignore_index,
    check_label_smoothing,
    class_axis,
)

__all__ = ["Accumulator", "ChunkParts", "Result", "cross_entropy", "log_loss"]

# One block of an iterable of blocks: (predictions, targets)
Block: TypeAlias = tuple[ArrayLike, ArrayLike]


class ChunkParts(NamedTuple):
    """One block's share of the scores: float64 sums that add up across blocks.

    What `chunk_parts` returns and `Accumulator.add` takes, so that blocks
    can be scored elsewhere (another process, a Dask worker) and added here.

    Attributes
    ----------
    loss_sum : float
        The block's loss with ``reduction="sum"``.
    denominator : float
        What the mean divides by: the summed class weights of the counted rows
        (their number without `weight`).
    correct : float
        Counted rows whose top prediction is the target class.
    counted : float
        Rows that count for the accuracy (not `ignore_index`).
    rows : int
        Rows in the block, ignored or not.
    """

    loss_sum: float  # the loss with reduction="sum"
    denominator: float  # what the mean divides by (summed class weights of counted rows)
    correct: float  # counted rows whose top prediction is the target class
    counted: float  # rows that count for the accuracy (not ignore_index)
    rows: int  # rows in the block, ignored or not


class Result(NamedTuple):
    """The scores of everything an `Accumulator` has seen.

    Attributes
    ----------
    mean : float
        The loss's (weighted) mean, ``sum / count``: NaN when nothing counted.
    sum : float
        The loss with ``reduction="sum"``, accumulated in float64.
    count : float
        The mean's denominator: the counted rows, or their summed class weights.
    accuracy : float or None
        The fraction of counted rows whose top prediction is the target
        (NaN when nothing counted); None unless asked for.
    rows : int
        All rows seen, ignored or not.
    perplexity : float
        ``exp(mean)`` (inf beyond float range): a language model's perplexity.
    """

    mean: float  # the loss's (weighted) mean: sum / count
    sum: float
    count: float  # type: ignore[assignment]  # (shadows tuple.count) the mean's denominator
    accuracy: float | None  # None unless asked for
    rows: int

    @property
    def perplexity(self) -> float:
        """exp(mean): the perplexity of a language model's cross-entropy."""
        return math.exp(self.mean) if self.mean < 709.0 else math.inf


def chunk_parts(predictions: ArrayLike, target: ArrayLike, *, from_logits: bool = True,
                weight: ArrayLike | None = None, ignore_index: int = IGNORE_INDEX_DEFAULT,
                label_smoothing: float = 0.0, axis: int | None = None, accuracy: bool = False,
                origin: tuple[int, ...] | None = None) -> ChunkParts:
    """The `ChunkParts` of one block of (predictions, target).

    Parameters
    ----------
    predictions, target : array_like
        One block, as `Accumulator.update` takes it.
    from_logits, weight, ignore_index, label_smoothing, axis, accuracy
        As for `Accumulator`.
    origin : tuple of int, optional
        The index of the block's first element in the whole, so that error
        messages name positions in the whole.

    Returns
    -------
    ChunkParts
        The block's float64 sums.

    Raises
    ------
    ValueError, TypeError, IndexError
        As `cross_entropy` (or `log_loss` with ``from_logits=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.stream import chunk_parts
    >>> parts = chunk_parts(np.zeros((2, 2)), np.array([0, 1]), accuracy=True)
    >>> round(parts.loss_sum, 6), parts.denominator, parts.correct, parts.rows  # 2 log 2
    (1.386294, 2.0, 1.0, 2)
    """
    scores = as_array(predictions, "predictions")
    targets = as_array(target, "target")
    axis = class_axis(axis, scores.shape, targets, "predictions")
    if from_logits:
        # the accuracy in the kernel's pass (its rows' maxima), not an argmax pass of its own
        parts = _partials.class_loss_parts(scores, targets, weight=weight,
                                           ignore_index=ignore_index,
                                           label_smoothing=label_smoothing, axis=axis,
                                           origin=origin, accuracy=accuracy)
        loss_sum, denominator = parts.loss_sum, parts.denominator
        correct, counted = parts.correct, parts.counted
    else:
        loss_sum, denominator, correct, counted = _log_loss_parts(
            scores, targets, weight, ignore_index, axis, origin, accuracy)
    rows = (targets.size if targets.dtype.kind in "iu"
            else targets.size // max(1, scores.shape[axis]))
    return ChunkParts(loss_sum, denominator, correct, counted, int(rows))


def _log_loss_parts(probs: NDArray[Any], target: NDArray[Any], weight: ArrayLike | None,
                    ignore_index: int, axis: int, origin: tuple[int, ...] | None,
                    accuracy: bool) -> tuple[float, float, float, float]:
    """(sum, denominator, correct, counted) of -log(p[target]), p clipped to
    [eps, 1 - eps] as scikit-learn's log_loss. One pass of the NLL kernel
    checks the labels, picks each row's target probability and, with
    `accuracy`, finds whether it is the row's top one (the argmax of p is the
    argmax of log p); only the picked probabilities are clipped and logged."""
    if probs.dtype.kind != "f":
        raise TypeError(f"predictions: expected probabilities, got dtype {probs.dtype}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"target: expected integer class indices, got dtype {target.dtype}")
    axis = check_axis(axis, probs.ndim, "predictions")
    batch_shape = probs.shape[:axis] + probs.shape[axis + 1:]
    if target.shape != batch_shape:
        raise ValueError(f"target: class indices must have shape {batch_shape} (predictions "
                         f"{probs.shape} without axis {axis}), got {target.shape}")
    ignore_index = check_ignore_index(ignore_index)
    with _partials.located(origin):
        # Read as log-probabilities, each row's loss is -p[target] (0 when ignored).
        p, negated = _losses.solve_classes(
            probs, target, kind=Scores.LOG_PROBS, weight=None, ignore_index=ignore_index,
            reduction="none", label_smoothing=0.0, axis=axis, want_grad=False, out=None,
            return_accuracy=accuracy)
    correct, counted_rows = p.hits() if accuracy else (0.0, 0.0)
    counted = target != ignore_index
    rows_loss = np.asarray(negated)  # reduction="none": an array of the rows' losses
    picked = np.negative(rows_loss, out=rows_loss)  # the target classes' probabilities
    if not counted.all():
        picked = picked[counted]
    if picked.size and not (picked.min() >= 0 and picked.max() <= 1):  # NaN fails too
        k = int(np.argmax(~((picked >= 0) & (picked <= 1))))
        where = tuple(int(i) for i in np.argwhere(counted)[k])
        start = origin or (0,) * len(where)
        where = tuple(int(o) + i for o, i in zip(start, where))
        raise ValueError(f"predictions: {float(picked[k])!r} at position {where} (the target "
                         "class's probability) is not in [0, 1]")
    # Clipped and logged in the probabilities' dtype, summed in float64: as scikit-learn.
    eps = np.finfo(probs.dtype).eps
    loss = np.log(np.clip(picked, eps, 1 - eps, out=picked), out=picked)
    if weight is None:
        denominator = float(loss.size)
        loss_sum = -float(np.sum(loss, dtype=np.float64))
    else:
        class_weight = np.asarray(as_array(weight, "weight"), np.float64)
        if class_weight.shape != (probs.shape[axis],):
            raise ValueError(f"weight: expected one weight per class, shape "
                             f"({probs.shape[axis]},), got {class_weight.shape}")
        sample_weight = class_weight[target[counted]]
        denominator = float(np.sum(sample_weight))
        loss_sum = -float(np.dot(loss.astype(np.float64), sample_weight))
    return loss_sum, denominator, correct, counted_rows


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

    Raises
    ------
    ValueError
        `label_smoothing` with probabilities (``from_logits=False``) or outside
        [0, 1]; a bad `ignore_index`.

    See Also
    --------
    cross_entropy, log_loss : An iterable of blocks at once.
    fastxent.dask : The same on a Dask cluster.

    Notes
    -----
    Only float64 running sums are kept: memory does not grow with the blocks.
    The result equals the in-memory call on all the rows at once within
    float64 rounding, and has the same bits for the same blocks in the same
    order.

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

    def __init__(self, *, from_logits: bool = True, weight: ArrayLike | None = None,
                 ignore_index: int = IGNORE_INDEX_DEFAULT, label_smoothing: float = 0.0,
                 axis: int | None = None, accuracy: bool = False) -> None:
        if not from_logits and label_smoothing:
            raise ValueError("label_smoothing: applies to logits only (from_logits=True)")
        check_ignore_index(ignore_index)  # kept as given: the default is told apart (`is`)
        self.options: dict[str, Any] = dict(from_logits=bool(from_logits), weight=weight,
                            ignore_index=ignore_index,
                            label_smoothing=check_label_smoothing(label_smoothing), axis=axis,
                            accuracy=bool(accuracy))
        self.loss_sum = self.denominator = self.correct = self.counted = 0.0
        self.rows = 0

    def update(self, predictions: ArrayLike, target: ArrayLike) -> None:
        """Adds a block of predictions and their targets.

        Parameters
        ----------
        predictions : array_like
            Rows (..., classes on `axis`): logits or probabilities.
        target : array_like
            Integer class indices (the shape of `predictions` without the class
            axis) or, for logits, class probabilities (its shape).

        Raises
        ------
        ValueError, TypeError, IndexError
            As `chunk_parts`; positions are counted in the whole sequence of
            blocks (blocks follow each other along the targets' first axis).
        """
        targets = as_array(target, "target")
        origin = (self.rows,) + (0,) * max(0, targets.ndim - 1) if targets.ndim else None
        self.add(chunk_parts(predictions, targets, origin=origin, **self.options))

    def add(self, parts: ChunkParts) -> None:
        """Adds a block's `ChunkParts` computed elsewhere (another process, a
        Dask worker): added in the blocks' order, the same bits as `update`.

        Parameters
        ----------
        parts : ChunkParts
            What `chunk_parts` returned for the block.
        """
        self.loss_sum += parts.loss_sum
        self.denominator += parts.denominator
        self.correct += parts.correct
        self.counted += parts.counted
        self.rows += parts.rows

    def result(self) -> Result:
        """The scores so far.

        Returns
        -------
        Result
            The mean (NaN when nothing counted), sum, count, accuracy and rows.
        """
        mean = self.loss_sum / self.denominator if self.denominator else math.nan
        accuracy = None
        if self.options["accuracy"]:
            accuracy = self.correct / self.counted if self.counted else math.nan
        return Result(mean, self.loss_sum, self.denominator, accuracy, self.rows)


def _run(blocks: Iterable[Block], **options: Any) -> Result:
    acc = Accumulator(**options)
    for predictions, target in blocks:
        acc.update(predictions, target)
    return acc.result()


def cross_entropy(blocks: Iterable[Block], *, weight: ArrayLike | None = None,
                  ignore_index: int = IGNORE_INDEX_DEFAULT,
                  label_smoothing: float = 0.0, axis: int | None = None,
                  accuracy: bool = False) -> Result:
    """The cross-entropy of logits over an iterable of (logits, target) blocks.

    Parameters
    ----------
    blocks : iterable of (logits, target)
        Consumed once, one block at a time (a generator reading a file, a
        data loader): only one block is in memory at a time.
    weight, ignore_index, label_smoothing, axis, accuracy
        See `Accumulator`.

    Returns
    -------
    Result
        The mean, sum, count (the mean's denominator), accuracy and rows.

    Raises
    ------
    ValueError, TypeError, IndexError
        As `fastxent.cross_entropy`, positions counted over all blocks.

    See Also
    --------
    Accumulator : The same, one block at a time.
    fastxent.cross_entropy : All the rows at once.

    Examples
    --------
    >>> import numpy as np, fastxent.stream
    >>> r = fastxent.stream.cross_entropy([(np.zeros((2, 2)), np.array([0, 1]))])
    >>> round(r.mean, 6)
    0.693147
    """
    return _run(blocks, from_logits=True, weight=weight, ignore_index=ignore_index,
                label_smoothing=label_smoothing, axis=axis, accuracy=accuracy)


def log_loss(blocks: Iterable[Block], *, weight: ArrayLike | None = None,
             ignore_index: int = IGNORE_INDEX_DEFAULT,
             axis: int | None = None, accuracy: bool = False) -> Result:
    """The log loss of probabilities over an iterable of (probs, labels) blocks:
    -log p[label], p clipped to [eps, 1 - eps] as sklearn.metrics.log_loss
    (which this equals for integer labels 0..C-1 and rows summing to one).

    Parameters
    ----------
    blocks : iterable of (probs, labels)
        Consumed once, one block at a time.
    weight, ignore_index, axis, accuracy
        See `Accumulator`.

    Returns
    -------
    Result
        The mean, sum, count (the mean's denominator), accuracy and rows.

    Raises
    ------
    IndexError
        A label outside [0, C) that is not `ignore_index`.
    ValueError
        A target class's probability outside [0, 1].
    TypeError
        Predictions that are not floating point, labels that are not integers.

    See Also
    --------
    fastxent.sklearn.log_loss : All the rows at once.

    Notes
    -----
    Only the probability of each row's target class is read and clipped: no
    full-size clipped copy, no sort of the labels.

    Examples
    --------
    >>> import numpy as np, fastxent.stream
    >>> r = fastxent.stream.log_loss([(np.array([[0.5, 0.5]]), np.array([1]))])
    >>> round(r.mean, 6)
    0.693147
    """
    return _run(blocks, from_logits=False, weight=weight, ignore_index=ignore_index, axis=axis,
                accuracy=accuracy)
