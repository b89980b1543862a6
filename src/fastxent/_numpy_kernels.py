"""The kernels of the NumPy backend: the same contract as fastxent._kernels
(a validated problem record of fastxent._validate, with C-contiguous
(rows, classes) arrays; results written into the buffers it holds or that are
passed), written the way a careful NumPy user would: vectorised over the whole
batch, in place where possible. fastxent.reference runs on these."""

from typing import Any

import numpy as np

from ._kinds import BinaryInput, Scores, Transform

# PyTorch keeps the denominator p (1 - p) of binary_cross_entropy's gradient
# above EPSILON = 1e-12 declared as a C++ float: 1e-12 rounded to float32.
TORCH_BCE_EPSILON = float(np.float32(1e-12))


def _shifted_exps(x: Any) -> Any:
    """x - rowmax, its exp, and the row sums of the exps (float64, keepdims)."""
    shifted = x - x.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    return shifted, exps, exps.sum(axis=1, keepdims=True, dtype=np.float64)


def class_loss(problem: Any, *, row_loss: Any, n_threads: Any = 1) -> Any:
    """The loss of a validated class problem (see fastxent._kernels.class_loss)."""
    p = problem
    mean = p.reduction == "mean"
    if p.is_index:
        return _xent_index(p.x, p.target, p.result, p.weight, p.ignore_index, p.label_smoothing,
                           mean, row_loss, p.scores)
    total, denom = _xent_prob(p.x, p.target, p.result, p.weight, p.label_smoothing, mean, row_loss)
    return total, denom, -1


def _xent_index(
    x: Any, target: Any, grad: Any, weight: Any, ignore_index: Any, label_smoothing: Any,
    mean: Any, row_loss: Any, scores: Any,
) -> Any:
    """Softmax cross-entropy against class indices, or the negative
    log-likelihood of log-probabilities x (scores)."""
    n_rows, n_classes = x.shape
    counted = target != ignore_index
    bad = counted & ((target < 0) | (target >= n_classes))
    if bad.any():
        return 0.0, 0.0, int(np.argmax(bad))
    if n_rows == 0:
        return 0.0, 0.0, -1
    labels = np.where(counted, target, 0)
    rows = np.arange(n_rows)
    eps = label_smoothing
    w = np.ones(n_classes) if weight is None else weight.astype(np.float64)
    w_y = np.where(counted, w[labels], 0.0)
    w_total = w.sum()
    if scores is Scores.LOG_PROBS:
        return _nll(x, labels, rows, counted, w_y, grad, mean, row_loss)

    shifted, exps, sums = _shifted_exps(x)
    log_sums = np.log(sums[:, 0])
    # -log p_c = log_sums - shifted_c
    loss = (1 - eps) * w_y * (log_sums - shifted[rows, labels])
    if eps:
        loss += eps / n_classes * (w_total * log_sums - shifted @ w.astype(x.dtype))
    loss = np.where(counted, loss, 0.0)  # ignored rows count 0, even NaN ones
    denom = w_y.sum() if mean else 0.0

    if grad is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / np.float64(denom) if mean else 1.0
            smoothing = np.where(counted, eps / n_classes * w_total, 0.0) if eps else 0.0
            coef = scale * ((1 - eps) * w_y + smoothing)
            np.multiply(exps, (coef / sums[:, 0])[:, None].astype(x.dtype), out=grad)
            if eps:
                grad -= ((scale * eps / n_classes) * w).astype(x.dtype)
            grad[rows, labels] -= (scale * (1 - eps) * w_y).astype(x.dtype)
        grad[~counted] = 0
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), float(denom), -1


def _xent_prob(
    x: Any, target: Any, grad: Any, weight: Any, label_smoothing: Any, mean: Any, row_loss: Any,
) -> Any:
    """Softmax cross-entropy against class probabilities."""
    n_rows, n_classes = x.shape
    if n_rows == 0:
        return 0.0, 0.0
    eps = label_smoothing
    smoothed = target * (1 - eps) + eps / n_classes if eps else target
    weighted = smoothed if weight is None else smoothed * weight
    shifted, exps, sums = _shifted_exps(x)
    mass = weighted.sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        # sum_c t_c (log_sums - shifted_c); a class of no mass adds nothing,
        # even at -inf (a masked vocabulary)
        gaps = np.where(weighted == 0, 0, weighted * shifted)
        loss = mass * np.log(sums[:, 0]) - gaps.sum(axis=1, dtype=np.float64)
    if grad is not None:
        scale = 1.0 / n_rows if mean else 1.0
        np.multiply(exps, (scale * mass / sums[:, 0])[:, None].astype(x.dtype), out=grad)
        grad -= scale * weighted
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), float(n_rows)


def _nll(
    x: Any, labels: Any, rows: Any, counted: Any, w_y: Any, grad: Any, mean: Any, row_loss: Any,
) -> Any:
    loss = np.where(counted, -w_y * x[rows, labels], 0.0)  # ignored rows count 0, even NaN ones
    denom = w_y.sum() if mean else 0.0
    if grad is not None:
        grad[...] = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / np.float64(denom) if mean else 1.0
            grad[rows, labels] = np.where(counted, -w_y * scale, 0.0)
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), float(denom), -1


def _log_sum_exps(x: Any) -> Any:
    """(shift, log(sum(exp(x - shift)))) of each row (keepdims; the log in
    float64). The shift is the row's maximum, or 0 where that is infinite
    (SciPy's shift for log_softmax and logsumexp). As scipy.special.logsumexp
    (its gh-18295), the terms below the maximum are summed apart and added
    by log1p, so that a row dominated by its maximum keeps its relative
    accuracy: logsumexp([0, -40]) is 4.2e-18, not 0."""
    m = x.max(axis=1, keepdims=True)
    finite = np.isfinite(m)
    shift = np.where(finite, m, 0).astype(x.dtype)
    exps = np.exp(x - shift)
    top = (x == m) & finite  # the maxima, in rows shifted by theirs
    k = top.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.where(top, 0, exps).sum(axis=1, keepdims=True, dtype=np.float64)
        split = np.log1p(rest / k) + np.log(k)
        plain = np.log(exps.sum(axis=1, keepdims=True, dtype=np.float64))
    return shift, np.where(k > 0, split, plain)


def softmax_rows(rows: Any, *, transform: Any, n_threads: Any = 1) -> Any:
    """softmax or log_softmax (transform) of each row of rows.x into rows.result."""
    x, out = rows.x, rows.result
    if x.size == 0:  # no rows, or rows of no classes: nothing to write
        return
    if transform is Transform.LOG_SOFTMAX:
        shift, log_sums = _log_sum_exps(x)
        np.subtract(x - shift, log_sums.astype(x.dtype), out=out)
    else:
        _, exps, sums = _shifted_exps(x)
        np.divide(exps, sums.astype(x.dtype), out=out)


def logsumexp_rows(rows: Any, *, out: Any, n_threads: Any = 1) -> Any:
    """log(sum(exp(row))) of each row of rows.x into out."""
    x = rows.x
    if x.shape[0] == 0:
        return
    if x.shape[1] == 0:
        out[...] = -np.inf  # the log of an empty sum
        return
    shift, log_sums = _log_sum_exps(x)
    out[...] = log_sums[:, 0] + shift[:, 0]


def entropy_rows(rows: Any, *, q: Any, out: Any, n_threads: Any = 1) -> Any:
    """Row sums of entr(p), or of rel_entr(p, q) when q is given, into out;
    p is rows.x."""
    p = rows.x
    p64 = p.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if q is None:
            terms = np.where(p64 > 0, -p64 * np.log(np.where(p64 > 0, p64, 1)),
                             np.where(p64 == 0, 0.0, -np.inf))
        else:
            q64 = q.astype(np.float64)
            both = (p64 > 0) & (q64 > 0)
            p_, q_ = np.where(both, p64, 1.0), np.where(both, q64, 1.0)
            ratio = p_ / q_
            # scipy.special.rel_entr's three ways, by the size of p / q.
            near_one = (ratio > 0.5) & (ratio < 2)
            normal = (ratio > np.finfo(np.float64).tiny) & np.isfinite(ratio)
            per_term = np.where(near_one, p_ * np.log1p((p_ - q_) / q_),
                                np.where(normal, p_ * np.log(ratio),
                                         p_ * (np.log(p_) - np.log(q_))))
            terms = np.where(both, per_term, np.where((p64 == 0) & (q64 >= 0), 0.0, np.inf))
            terms[np.isnan(q64)] = np.nan
        terms[np.isnan(p64)] = np.nan
    out[...] = terms.sum(axis=1)


def binary_loss(problem: Any, *, elem_loss: Any, n_threads: Any = 1) -> Any:
    """Binary cross-entropy, elementwise (see fastxent._kernels.binary_loss)."""
    p = problem
    x, target, weight, pos_weight, grad = p.x, p.target, p.weight, p.pos_weight, p.grad
    mean = p.reduction == "mean"
    n = x.size
    if n == 0:
        return 0.0, 0.0, -1
    w = 1.0 if weight is None else weight
    scale = 1.0 / n if mean else 1.0
    total = None
    if p.input is BinaryInput.LOGITS:
        pw = 1.0 if pos_weight is None else pos_weight
        log_weight = 1.0 if pos_weight is None else 1 + (pos_weight - 1) * target
        e = np.exp(-np.abs(x))
        loss = _bce_logits_loss(x, target, w, pw, log_weight, e)
        total = float(loss.sum(dtype=np.float64))
        if x.dtype == np.float32 and not np.isfinite(total):
            # A loss beyond float's range (or a NaN): the sum again, in double,
            # so that a mean of such losses stays finite (as the compiled
            # kernels); before grad, which may be x, is written.
            x64, t64, w64, pw64, lw64 = (np.asarray(a, np.float64)
                                         for a in (x, target, w, pw, log_weight))
            total = float(_bce_logits_loss(x64, t64, w64, pw64, lw64, np.exp(-np.abs(x64))).sum())
        if grad is not None:
            sigmoid_x = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
            pos = target if pos_weight is None else pos_weight * target
            grad[...] = scale * w * (log_weight * sigmoid_x - pos)
    else:
        outside = (x < 0) | (x > 1)
        if outside.any():
            return 0.0, float(n), int(np.argmax(outside.reshape(-1)))
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(x), -100)
            log_1mp = np.maximum(np.log1p(-x), -100)
        loss = -w * (target * log_p + (1 - target) * log_1mp)
        if grad is not None:
            grad[...] = scale * w * (x - target) / np.maximum((1 - x) * x, TORCH_BCE_EPSILON)
    if elem_loss is not None:
        elem_loss[...] = loss
    if total is None:
        total = float(loss.sum(dtype=np.float64))
    return total, float(n), -1


def _bce_logits_loss(x: Any, target: Any, w: Any, pw: Any, log_weight: Any, e: Any) -> Any:
    """PyTorch's (1 - t) x + l (log1p(e) + max(-x, 0)), e = exp(-|x|), which
    for x < 0 is pw t |x| + l log1p(e): nothing cancels or overflows.
    Coefficients first: w (1 - t) x cannot overflow where the loss does not."""
    with np.errstate(over="ignore", invalid="ignore"):  # of the branch np.where drops
        linear = np.where(x >= 0, (w * (1 - target)) * x, -(w * pw * target) * x)
    return linear + (w * log_weight) * np.log1p(e)
