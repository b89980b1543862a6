"""The kernels of the NumPy backend: the same contract as fastxent._kernels
(validated, C-contiguous (rows, classes) input; results written into the
buffers passed), written the way a careful NumPy user would: vectorised over
the whole batch, in place where possible. fastxent.reference runs on these."""

import numpy as np


def _shifted_exps(x):
    """x - rowmax, its exp, and the row sums of the exps (float64, keepdims)."""
    shifted = x - x.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    return shifted, exps, exps.sum(axis=1, keepdims=True, dtype=np.float64)


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
    w = np.ones(n_classes) if weight is None else weight.astype(np.float64)
    w_y = np.where(counted, w[labels], 0.0)
    w_total = w.sum()

    shifted, exps, sums = _shifted_exps(x)
    log_sums = np.log(sums[:, 0])
    # -log p_c = log_sums - shifted_c
    loss = (1 - eps) * w_y * (log_sums - shifted[rows, labels])
    if eps:
        smooth = w_total * log_sums - shifted @ w.astype(x.dtype)
        loss += np.where(counted, eps / n_classes * smooth, 0.0)
    denom = w_y.sum() if mean else 0.0

    if grad is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / np.float64(denom) if mean else 1.0
            coef = scale * ((1 - eps) * w_y + np.where(counted, eps / n_classes * w_total, 0.0))
            np.multiply(exps, (coef / sums[:, 0])[:, None].astype(x.dtype), out=grad)
        if eps:
            grad -= ((scale * eps / n_classes) * w).astype(x.dtype)
            grad[~counted] = 0
        grad[rows, labels] -= (scale * (1 - eps) * w_y).astype(x.dtype)
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
    shifted, exps, sums = _shifted_exps(x)
    mass = weighted.sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        # sum_c t_c (log_sums - shifted_c)
        loss = mass * np.log(sums[:, 0]) - np.einsum("ij,ij->i", weighted, shifted, dtype=np.float64)
    if grad is not None:
        scale = 1.0 / n_rows if mean else 1.0
        np.multiply(exps, (scale * mass / sums[:, 0])[:, None].astype(x.dtype), out=grad)
        grad -= scale * weighted
    if row_loss is not None:
        row_loss[...] = loss
    return float(loss.sum()), float(n_rows)
