"""A drop-in twin of ``sklearn.metrics.log_loss`` (scikit-learn 1.9), computed
with fastxent. scikit-learn itself is not needed.

What scikit-learn does and ``log_loss`` does too:

* Classes are the sorted distinct values of ``y_true`` (any comparable labels:
  numbers, strings, booleans), or of ``labels=``; the columns of ``y_proba``
  follow that order. ``y_true`` may also be a 2-D 0/1 label indicator matrix
  (one-hot or multilabel), whose columns are the classes.
* A 1-D ``y_proba`` (or one column) is the probability of the second class.
* Probabilities are clipped to ``[eps, 1 - eps]``, eps the machine epsilon of
  ``y_proba``'s dtype (float64, float32 or float16; other dtypes are converted
  to float64).
* Rows of ``y_proba`` that do not sum to 1 give a UserWarning (not an error),
  as do ``labels`` not in sorted order.
* The result is the mean over samples (weighted by ``sample_weight``), or the
  sum with ``normalize=False``, as a Python float.

It raises ValueError where scikit-learn does: probabilities outside [0, 1]
or not finite, inconsistent numbers of samples, a single class without
``labels=`` (or fewer than two ``labels``), labels of ``y_true`` missing from
``labels``, a number of classes unlike ``y_proba``'s, non-integral float
labels, bad sample weights. As NumPy (and so scikit-learn), weights that sum
to zero raise ZeroDivisionError for the mean.
"""

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_array

__all__ = ["log_loss"]

_PROBABILITY_DTYPES = (np.float64, np.float32, np.float16)


def log_loss(
    y_true: ArrayLike,
    y_proba: ArrayLike | None = None,
    *,
    normalize: bool = True,
    sample_weight: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    y_pred: ArrayLike | str = "deprecated",
) -> float:
    r"""Log loss (cross-entropy) of predicted probabilities, as
    ``sklearn.metrics.log_loss`` (scikit-learn 1.9).

    scikit-learn's argument order and semantics (not PyTorch's): truth first,
    the mean per sample by default, a Python float back. scikit-learn itself is
    not needed.

    Parameters
    ----------
    y_true : array_like
        Class labels, shape (n_samples,) or (n_samples, 1) (numbers, strings,
        booleans: any labels that sort), or a 0/1 label indicator matrix
        (n_samples, n_classes), one-hot or multilabel.
    y_proba : array_like
        Predicted probabilities, shape (n_samples, n_classes), the columns in
        the sorted order of the classes; or (n_samples,) (or one column), the
        probability of the second class. float64, float32 or float16 (other
        dtypes are converted to float64).
    normalize : bool, default True
        True: the mean per sample (weighted by `sample_weight`); False: the sum.
    sample_weight : array_like, shape (n_samples,), optional
        A weight per sample.
    labels : array_like, optional
        All the classes, when `y_true` does not show each of them.
    y_pred : array_like, optional
        The old name of `y_proba` (scikit-learn 1.9 renamed it): it still
        works, with a ``FutureWarning``.

    Returns
    -------
    float
        The loss, accumulated in float64, as a Python float.

    Raises
    ------
    ValueError
        Probabilities outside [0, 1] or not finite; inconsistent numbers of
        samples; a single class without `labels` (or fewer than two `labels`);
        labels of `y_true` missing from `labels`; a number of classes unlike
        `y_proba`'s; non-integral float labels; a 2-D `y_true` that is not 0/1;
        sample weights that are not finite or all zero; both `y_pred` and
        `y_proba`.
    TypeError
        A `normalize` that is not a bool; arrays of the wrong kind; no
        `y_proba`.
    ZeroDivisionError
        Weights that sum to zero, for the mean (as NumPy, and so scikit-learn).

    Warns
    -----
    UserWarning
        Rows of `y_proba` that do not sum to 1 (not an error), and `labels` not
        in sorted order.

    See Also
    --------
    fastxent.nll_loss : The loss from log-probabilities and class indices.
    fastxent.cross_entropy : The loss from logits.

    Notes
    -----
    With :math:`p_{nk}` clipped to :math:`[\epsilon, 1 - \epsilon]`,
    :math:`\epsilon` the machine epsilon of `y_proba`'s dtype,

    .. math::

        L = -\frac{1}{\sum_n s_n} \sum_n s_n \sum_k y_{nk} \log p_{nk},

    :math:`y_{nk}` 1 where sample :math:`n` is of class :math:`k` (several
    classes for a multilabel row) and :math:`s_n` the sample weights (1 by
    default); ``normalize=False`` drops the division.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.sklearn import log_loss
    >>> y_true = ["spam", "ham", "ham", "spam"]
    >>> y_proba = np.array([[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]])
    >>> round(log_loss(y_true, y_proba), 4)
    0.2162
    >>> bool(np.isclose(log_loss(y_true, y_proba), -np.log([0.9, 0.9, 0.8, 0.65]).mean()))
    True
    >>> round(log_loss([0, 1, 1], [0.2, 0.7, 0.9], sample_weight=[1, 2, 1]), 4)
    0.2605
    """
    if not (isinstance(y_pred, str) and y_pred == "deprecated"):
        if y_proba is not None:  # scikit-learn's words
            raise ValueError("Cannot use both `y_pred` and `y_proba`. `y_pred` is deprecated, "
                             "use `y_proba` instead.")
        warnings.warn("`y_pred` was renamed to `y_proba` in version 1.9 and will be removed "
                      "in 1.11. Use `y_proba` instead.", FutureWarning, stacklevel=2)
        y_proba = y_pred
    if y_proba is None:
        raise TypeError("log_loss() missing the required argument y_proba")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize: expected a bool, got {normalize!r}")
    probs = _probabilities(y_proba)
    target = _label_array(y_true, "y_true")
    weight = None if sample_weight is None else _sample_weight(sample_weight)
    counts = [len(probs), len(target)] + ([] if weight is None else [len(weight)])
    if len(set(counts)) > 1:
        names = "y_proba, y_true" + ("" if weight is None else ", sample_weight")
        raise ValueError(f"{names}: inconsistent numbers of samples: {counts}")

    classes, target = _encode(target, labels)
    if probs.ndim == 1:
        probs = probs[:, None]
    if probs.shape[1] == 1:  # the probability of the second class
        probs = np.concatenate([1 - probs, probs], axis=1)
    eps = np.finfo(probs.dtype).eps
    # np.allclose(sums, 1, rtol=sqrt(eps), atol=1e-8), without its temporaries.
    deviation = np.max(np.abs(probs.sum(axis=1) - 1))
    if not deviation <= 1e-8 + np.sqrt(eps):
        warnings.warn("y_proba: some rows do not sum to one; make sure to pass probabilities",
                      UserWarning, stacklevel=2)
    if len(classes) != probs.shape[1]:
        raise ValueError(
            f"y_proba: has {probs.shape[1]} classes (columns) but "
            + ("labels" if labels is not None else "y_true") + f" has {len(classes)}: "
            f"{classes.tolist()}" + ("; pass all the classes as labels=" if labels is None else ""))

    if target.ndim == 2:
        # A multilabel row counts the log-probability of each of its classes.
        loss = -np.sum(_clipped_log(probs, eps), axis=1, where=target)
    else:
        # Only each row's true class is read: no full-size clipped copy.
        loss = -_clipped_log(np.take_along_axis(probs, target[:, None], axis=1)[:, 0], eps)
    return _average(loss, weight, normalize)


def _clipped_log(probs: NDArray[Any], eps: Any) -> NDArray[Any]:
    """log of probs clipped at the epsilon of y_proba's dtype, as scikit-learn;
    float16 then computes in float32 (fastxent's dtype rule, and a more
    accurate log)."""
    clipped = np.clip(probs, eps, 1 - eps)
    logs: NDArray[Any] = np.log(clipped.astype(np.float32) if clipped.dtype == np.float16
                                else clipped)
    return logs


def _probabilities(y_proba: ArrayLike) -> NDArray[Any]:
    """y_proba as a finite 1-D or 2-D float array of values in [0, 1]."""
    probs = as_array(y_proba, "y_proba")
    if probs.dtype.kind not in "biuf":
        raise TypeError(f"y_proba: expected probabilities, got dtype {probs.dtype}")
    if probs.dtype not in _PROBABILITY_DTYPES:
        probs = probs.astype(np.float64)
    if probs.ndim not in (1, 2):
        raise ValueError(f"y_proba: expected 1 or 2 dimensions, got shape {probs.shape}")
    if probs.size == 0:
        raise ValueError(f"y_proba: expected at least one sample, got shape {probs.shape}")
    # Two reductions, no temporary: NaN and infinities show in the min or max.
    low, high = probs.min(), probs.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("y_proba: contains NaN or infinity")
    if high > 1:
        raise ValueError(f"y_proba: contains values greater than 1: {high}")
    if low < 0:
        raise ValueError(f"y_proba: contains values lower than 0: {low}")
    return probs


def _label_array(values: ArrayLike, name: str) -> NDArray[Any]:
    """values as an array; a list that mixes strings and other labels is refused
    (NumPy would quietly turn the numbers into strings)."""
    arr = as_array(values, name)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array of labels, got {values!r}")
    if arr.dtype.kind in "US" and not isinstance(values, np.ndarray):
        if not all(isinstance(v, (str, bytes)) for v in np.ravel(np.asarray(values, object))):
            raise ValueError(f"{name}: mixes strings and other labels")
    return arr


def _encode(target: NDArray[Any], labels: ArrayLike | None) -> tuple[NDArray[Any], NDArray[Any]]:
    """(classes, target): target as class indices (n_samples,) or, for a label
    indicator matrix, a bool matrix (n_samples, n_classes)."""
    if target.ndim == 2 and target.shape[1] == 1:  # a column of labels, as scikit-learn
        target = target[:, 0]
    if target.ndim == 2 and target.shape[1] > 1:
        if labels is not None:
            raise ValueError("labels: cannot be used with a label indicator matrix y_true")
        if target.dtype.kind not in "biuf" or not np.isin(target, (0, 1)).all():
            raise ValueError(
                "y_true: a 2-D y_true must be a label indicator matrix of 0s and 1s "
                "(multioutput targets are not supported)")
        return np.arange(target.shape[1]), target.astype(bool)
    if target.ndim != 1:
        raise ValueError("y_true: expected 1-D labels or a 2-D label indicator matrix, "
                         f"got shape {target.shape}")
    _check_labels(target, "y_true")
    if labels is None:
        classes, indices = _unique_inverse(target, "y_true")
        if len(classes) < 2:
            raise ValueError(
                f"y_true: contains only one label ({classes[0]}); pass all the expected "
                "classes as labels=")
        return classes, indices

    given = _label_array(labels, "labels")
    if given.ndim != 1:
        raise ValueError(f"labels: expected a 1-D array, got shape {given.shape}")
    _check_labels(given, "labels")
    classes = _unique(given, "labels")
    if classes.shape != given.shape or not np.all(classes == given):
        warnings.warn(
            f"labels: {given.tolist()} are not sorted, but the columns of y_proba are taken to "
            f"be the sorted classes {classes.tolist()}", UserWarning, stacklevel=3)
    unknown = ~np.isin(target, classes)
    if unknown.any():
        raise ValueError(
            f"y_true: contains values {sorted(set(target[unknown].tolist()), key=str)} "
            f"not among labels {given.tolist()}")
    if len(classes) < 2:
        raise ValueError(f"labels: must contain at least two classes, got {classes.tolist()}")
    return classes, np.searchsorted(classes, target)


# Integer labels spanning at most this many values are encoded by counting and
# a lookup table (linear time, no sort of the samples).
_TABLE_SPAN = 1 << 20


def _unique_inverse(values: NDArray[Any], name: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """np.unique(values, return_inverse=True), without sorting the samples when
    they are integers in a short range (classes 0..C-1: the labels themselves)."""
    if values.dtype.kind in "iu" and values.size:
        low, high = int(values.min()), int(values.max())
        if high - low < _TABLE_SPAN:
            shifted = (values - values.dtype.type(low) if low else values).astype(np.intp,
                                                                                  copy=False)
            present = np.bincount(shifted, minlength=high - low + 1) > 0
            classes = (np.flatnonzero(present) + low).astype(values.dtype)
            if low == 0 and present.all():  # classes 0..C-1: the labels are their indices
                return classes, values.astype(np.intp, copy=False)
            table = np.cumsum(present) - 1
            return classes, table[shifted]
    classes, inverse = _unique(values, name, return_inverse=True)
    return classes, inverse


def _check_labels(values: NDArray[Any], name: str) -> None:
    """Float labels must be whole numbers, as for scikit-learn."""
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise ValueError(f"{name}: contains NaN")
        if not np.all(values == np.round(values)):
            raise ValueError(
                f"{name}: continuous values are not class labels "
                f"(e.g. {values[values != np.round(values)][0]})")
    elif values.dtype.kind not in "biuUSO":
        raise TypeError(f"{name}: expected class labels, got dtype {values.dtype}")


def _unique(values: NDArray[Any], name: str, **kwargs: Any) -> Any:
    try:
        return np.unique(values, **kwargs)
    except TypeError:  # objects that cannot be sorted together
        raise ValueError(f"{name}: labels of mixed or unsortable types") from None


def _sample_weight(sample_weight: ArrayLike) -> NDArray[Any]:
    weight = as_array(sample_weight, "sample_weight")
    if weight.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight: expected real numbers, got dtype {weight.dtype}")
    if weight.ndim != 1:
        raise ValueError(f"sample_weight: expected a 1-D array, got shape {weight.shape}")
    if not np.isfinite(weight).all():
        raise ValueError("sample_weight: contains NaN or infinity")
    if not weight.any():
        raise ValueError("sample_weight: must contain at least one non-zero number")
    return weight.astype(np.float64)


def _average(loss: NDArray[Any], weight: NDArray[Any] | None, normalize: bool) -> float:
    """The (weighted) mean or sum of the per-sample losses, accumulated in float64."""
    loss = loss.astype(np.float64)
    if weight is None:
        return float(loss.mean() if normalize else loss.sum())
    if not normalize:
        return float(loss @ weight)
    total = weight.sum()
    if total == 0:
        raise ZeroDivisionError("sample_weight: the weights sum to zero: no weighted mean")
    return float(loss @ weight / total)
