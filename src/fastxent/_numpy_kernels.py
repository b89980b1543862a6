"""The kernels of the NumPy backend: the same contract as fastxent._kernels
(a validated problem record of fastxent._validate, with C-contiguous
(rows, classes) arrays; results written into the buffers it holds or that are
passed), written the way a careful NumPy user would: vectorised over the whole
batch, in place where possible. fastxent.reference runs on these."""

import dataclasses
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
    if p.x.dtype.itemsize == 2 or p.softcap is not None:
        return _loaded_class_loss(p, row_loss)
    if p.is_index:
        return _xent_index(p, row_loss)
    total, denom = _xent_prob(p, row_loss)
    return total, denom, -1


def _loaded_class_loss(p: Any, row_loss: Any) -> Any:
    """class_loss of float16/bfloat16 or soft-capped logits, as the compiled
    kernels' load transform does it but over whole arrays: the logits widened
    to float32 and capped to softcap * tanh(x / softcap), the gradient
    computed on those, then multiplied by the cap's derivative 1 - tanh**2
    and narrowed into p.result."""
    x = p.x.astype(np.float32) if p.x.dtype.itemsize == 2 else p.x
    slope = None
    if p.softcap is not None:
        cap = x.dtype.type(p.softcap)
        with np.errstate(over="ignore"):  # x / cap beyond the range: tanh is +-1 there
            tanh = np.tanh(x / cap)
        x = tanh * cap
        slope = 1 - tanh * tanh
    result = p.result
    if result is not None and result.dtype != x.dtype:
        result = np.empty(x.shape, x.dtype)
    found = class_loss(dataclasses.replace(p, x=x, result=result, softcap=None),
                       row_loss=row_loss)
    if result is not None:
        if slope is not None:
            result *= slope
        if result is not p.result:
            p.result[...] = result  # rounded to nearest even
    return found


def _row_options(p: Any, loss: Any, coef: Any, scale: Any, log_sums: Any, m: Any, sums: Any,
                 predicted: Any, truth: Any, counted: Any) -> Any:
    """What every kind of target adds to its rows' losses (and to coef, the
    factor of each row's exps in the gradient): the z-loss z lse**2 and the
    sample weights; and the side outputs lse and correct (see fx_row_options)."""
    lse = log_sums + m
    if p.z_loss:
        loss = loss + p.z_loss * lse**2
        coef = coef + scale * 2 * p.z_loss * lse
    sw = 1.0 if p.sample_weight is None else p.sample_weight
    if p.lse is not None:
        p.lse[counted] = lse[counted]
    if p.correct is not None:
        p.correct[...] = (predicted == truth) & counted & ~np.isnan(sums)
    return loss * sw, coef * sw, sw


def _xent_index(p: Any, row_loss: Any) -> Any:
    """Softmax cross-entropy against class indices, or the negative
    log-likelihood of log-probabilities (p.scores)."""
    x, target, grad = p.x, p.target, p.result
    n_rows, n_classes = x.shape
    counted = target != p.ignore_index
    bad = counted & ((target < 0) | (target >= n_classes))
    if bad.any():
        return 0.0, 0.0, int(np.argmax(bad))
    if n_rows == 0:
        return 0.0, 0.0, -1
    mean = p.reduction == "mean"
    labels = np.where(counted, target, 0)
    rows = np.arange(n_rows)
    eps = p.label_smoothing
    w = np.ones(n_classes) if p.weight is None else p.weight.astype(np.float64)
    sw = 1.0 if p.sample_weight is None else p.sample_weight
    w_y = np.where(counted, w[labels], 0.0)
    w_total = w.sum()
    denom = (w_y * sw).sum() if mean else 0.0
    if p.scores is Scores.LOG_PROBS:
        return _nll(p, labels, rows, counted, w_y * sw, grad, mean, row_loss)

    shifted, exps, sums = _shifted_exps(x)
    log_sums = np.log(sums[:, 0])
    # -log p_c = log_sums - shifted_c
    loss = (1 - eps) * w_y * (log_sums - shifted[rows, labels])
    if eps:
        loss += eps / n_classes * (w_total * log_sums - shifted @ w.astype(x.dtype))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 1.0 / np.float64(denom) if mean else 1.0
        smoothing = np.where(counted, eps / n_classes * w_total, 0.0) if eps else 0.0
        coef = scale * ((1 - eps) * w_y + smoothing)
        loss, coef, sw = _row_options(p, loss, coef, scale, log_sums, x.max(axis=1).astype(np.float64),
                                      sums[:, 0], np.argmax(x, axis=1), labels, counted)
    loss = np.where(counted, loss, 0.0)  # ignored rows count 0, even NaN ones

    if grad is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            sw_col = np.reshape(sw, (-1, 1)) if np.ndim(sw) else sw
            np.multiply(exps, (coef / sums[:, 0])[:, None].astype(x.dtype), out=grad)
            if eps:
                grad -= ((scale * eps / n_classes) * w * sw_col).astype(x.dtype)
            grad[rows, labels] -= (scale * (1 - eps) * w_y * sw).astype(x.dtype)
        grad[~counted] = 0
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), float(denom), -1


def _xent_prob(p: Any, row_loss: Any) -> Any:
    """Softmax cross-entropy against class probabilities."""
    x, target, grad = p.x, p.target, p.result
    n_rows, n_classes = x.shape
    if n_rows == 0:
        return 0.0, 0.0
    mean = p.reduction == "mean"
    eps = p.label_smoothing
    smoothed = target * (1 - eps) + eps / n_classes if eps else target
    weighted = smoothed if p.weight is None else smoothed * p.weight
    shifted, exps, sums = _shifted_exps(x)
    mass = weighted.sum(axis=1, dtype=np.float64)
    denom = float(n_rows) if p.sample_weight is None else float(p.sample_weight.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        # sum_c t_c (log_sums - shifted_c); a class of no mass adds nothing,
        # even at -inf (a masked vocabulary)
        gaps = np.where(weighted == 0, 0, weighted * shifted)
        log_sums = np.log(sums[:, 0])
        loss = mass * log_sums - gaps.sum(axis=1, dtype=np.float64)
        scale = 1.0 / np.float64(denom) if mean else 1.0
        loss, coef, sw = _row_options(p, loss, scale * mass, scale, log_sums,
                                      x.max(axis=1).astype(np.float64), sums[:, 0],
                                      np.argmax(x, axis=1), np.argmax(target, axis=1),
                                      np.ones(n_rows, bool))
        if grad is not None:
            sw_col = np.reshape(sw, (-1, 1)) if np.ndim(sw) else sw
            np.multiply(exps, (coef / sums[:, 0])[:, None].astype(x.dtype), out=grad)
            grad -= (scale * weighted * sw_col).astype(x.dtype)
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), denom


def _nll(p: Any, labels: Any, rows: Any, counted: Any, w_y: Any, grad: Any, mean: Any,
         row_loss: Any) -> Any:
    """nll_loss; w_y: each row's class weight times its sample weight."""
    x = p.x
    loss = np.where(counted, -w_y * x[rows, labels], 0.0)  # ignored rows count 0, even NaN ones
    denom = w_y.sum() if mean else 0.0
    if p.correct is not None:  # a row holding NaN counts as not correct
        p.correct[...] = (np.argmax(x, axis=1) == labels) & counted & ~np.isnan(x).any(axis=1)
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
    if rows.x.dtype.itemsize == 2:  # float16, bfloat16: computed in float32
        widened = dataclasses.replace(rows, x=rows.x.astype(np.float32),
                                      result=np.empty(rows.x.shape, np.float32))
        softmax_rows(widened, transform=transform)
        rows.result[...] = widened.result
        return
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
    x = rows.x if rows.x.dtype.itemsize != 2 else rows.x.astype(np.float32)
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
    if p.x.dtype.itemsize == 2:  # float16, bfloat16 logits: computed in float32
        grad = None if p.grad is None else np.empty(p.x.shape, np.float32)
        found = binary_loss(dataclasses.replace(p, x=p.x.astype(np.float32),
                                                target=p.target.astype(np.float32), grad=grad),
                            elem_loss=elem_loss)
        if grad is not None:
            p.grad[...] = grad  # rounded to nearest even
        return found
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
