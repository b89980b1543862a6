"""The kernels of the NumPy backend: the same contract as fastxent._kernels
(validated, C-contiguous (rows, classes) input; results written into the
buffers passed), written the way a careful NumPy user would, vectorised over
the whole batch. fastxent.reference runs on these."""

import numpy as np


def _softmax_parts(x):
    """x - rowmax, its exp, and the row sums of the exps and their log (keepdims)."""
    shifted = x - x.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True, dtype=np.float64)
    return shifted, exps, sums.astype(x.dtype), np.log(sums).astype(x.dtype)


def xent_index(x, target, grad, weight, ignore_index, label_smoothing, mean, row_loss,
               n_threads=1):
    """Softmax cross-entropy against class indices (see fastxent._kernels.xent_index)."""
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
    w = np.ones(n_classes, x.dtype) if weight is None else weight
    w_y = np.where(counted, w[labels], 0).astype(np.float64)

    shifted, exps, sums, log_sums = _softmax_parts(x)
    neg_log_p = log_sums - shifted  # -log softmax
    loss = (1 - eps) * w_y * neg_log_p[rows, labels]
    if eps:
        w_total = w.sum(dtype=np.float64)
        loss = loss + np.where(counted, eps / n_classes * (neg_log_p @ w.astype(np.float64)), 0)
    else:
        w_total = 0.0
    denom = w_y.sum() if mean else 0.0

    if grad is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / np.float64(denom) if mean else 1.0
            probs = exps / sums
            coef = (scale * ((1 - eps) * w_y + eps / n_classes * w_total)).astype(x.dtype)
            g = probs * coef[:, None]
            if eps:
                g -= np.where(counted[:, None], (scale * eps / n_classes) * w, 0).astype(x.dtype)
            g[rows, labels] -= (scale * (1 - eps) * w_y).astype(x.dtype)
        grad[...] = np.where(counted[:, None], g, 0)
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), float(denom), -1


def xent_prob(x, target, grad, weight, label_smoothing, mean, row_loss, n_threads=1):
    """Softmax cross-entropy against class probabilities (see fastxent._kernels.xent_prob)."""
    n_rows, n_classes = x.shape
    if n_rows == 0:
        return 0.0, 0.0
    eps = label_smoothing
    smoothed = target * (1 - eps) + eps / n_classes if eps else target
    weighted = smoothed if weight is None else smoothed * weight
    shifted, exps, sums, log_sums = _softmax_parts(x)
    with np.errstate(invalid="ignore"):
        loss = (weighted * (log_sums - shifted)).sum(axis=1, dtype=np.float64)
    if grad is not None:
        scale = 1.0 / n_rows if mean else 1.0
        mass = weighted.sum(axis=1, keepdims=True, dtype=np.float64)
        probs = exps / sums
        grad[...] = (scale * (probs * mass.astype(x.dtype) - weighted)).astype(x.dtype)
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), float(n_rows)
