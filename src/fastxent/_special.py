"""Softmax, log-softmax, logsumexp, entropy and KL divergence along an axis
(semantics of scipy.special)."""

import numpy as np

from . import _config
from ._validate import check_base, prepare_pair, prepare_rows


def _softmax(x, axis, out, log_space):
    rows, _ = prepare_rows(x, axis, "x", want_result=True, out=out)
    _config.kernels().softmax_rows(rows.x, rows.result, log_space,
                                   _config.threads_for(rows.x.size))
    return rows.finish_result()


def softmax(x, *, axis=-1, out=None):
    """exp(x) / sum(exp(x)) along axis, as scipy.special.softmax. out may be x.
    An empty axis gives an empty array (as PyTorch)."""
    return _softmax(x, axis, out, False)


def log_softmax(x, *, axis=-1, out=None):
    """x - logsumexp(x) along axis, as scipy.special.log_softmax. out may be x.
    Where one element dominates its row, its result keeps its relative
    accuracy (-log1p of the others' sum, not 0). An empty axis gives an empty
    array (as PyTorch)."""
    return _softmax(x, axis, out, True)


def logsumexp(x, *, axis=-1):
    """log(sum(exp(x))) along axis, as scipy.special.logsumexp (the axis removed),
    with its accuracy near 0 (logsumexp([0, -40]) is 4.248e-18: log1p of the
    terms below a dominant maximum). An empty axis gives -inf."""
    rows, _ = prepare_rows(x, axis, "x")
    result = np.empty(rows.x.shape[0], rows.dtype)
    _config.kernels().logsumexp_rows(rows.x, result, _config.threads_for(rows.x.size))
    return rows.per_row(result)


def _entropy_sum(rows, q, base):
    log_base = check_base(base)
    result = np.empty(rows.x.shape[0], rows.dtype)
    _config.kernels().entropy_rows(rows.x, q, result, _config.threads_for(rows.x.size))
    if log_base is not None:
        result /= rows.dtype.type(log_base)
    return rows.per_row(result)


def entropy(p, *, axis=-1, base=None):
    """sum(scipy.special.entr(p)) along axis: -sum p log p, with 0 log 0 = 0.
    p is not renormalised. base: the logarithm's base (default e)."""
    rows, _ = prepare_rows(p, axis, "p")
    return _entropy_sum(rows, None, base)


def kl_divergence(p, q, *, axis=-1, base=None):
    """sum(scipy.special.rel_entr(p, q)) along axis: sum p log(p / q), with
    0 log(0 / q) = 0 and +inf where q = 0 < p. Neither is renormalised."""
    rows, q_flat = prepare_pair(p, q, axis)
    return _entropy_sum(rows, q_flat, base)
