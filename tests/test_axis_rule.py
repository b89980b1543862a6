"""The class axis when none is given (API.md's conventions): the last axis
for rank <= 2; for rank >= 3 the one the target's shape fits among PyTorch's
(1) and the last, a ValueError where both fit; and shape errors that suggest
the axis that would fit. Values against PyTorch (classes on dim 1)."""

import re

import numpy as np
import pytest

import fastxent
from conftest import torch_xent

CLASS_LOSSES = ["cross_entropy", "cross_entropy_with_grad", "nll_loss", "nll_loss_with_grad"]


def _call(name, x, t, **options):
    result = getattr(fastxent, name)(x, t, **options)
    return result[0] if name.endswith("_with_grad") else result


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_both_conventions_fit_raises(backend, rng, name):
    x = rng.standard_normal((4, 7, 7))
    t = rng.integers(0, 7, (4, 7))
    with pytest.raises(ValueError, match=re.escape("pass axis=1") + ".*axis=-1"):
        _call(name, x, t)
    # explicit axes are taken as given
    _call(name, x, t, axis=1)
    _call(name, x, t, axis=-1)


@pytest.mark.parametrize("name", ["cross_entropy", "cross_entropy_with_grad"])
def test_probability_targets_of_rank_3_need_an_axis(backend, rng, name):
    x = rng.standard_normal((4, 5, 7))
    p = rng.dirichlet(np.ones(5), (4, 7)).transpose(0, 2, 1)
    with pytest.raises(ValueError, match="axis=1"):
        _call(name, x, p)


def test_the_fitting_axis_is_taken_silently(backend, torch, rng):
    # PyTorch's layout: (N, C, T) logits with (N, T) labels fit axis 1 only.
    x = rng.standard_normal((4, 5, 7))
    t = rng.integers(0, 5, (4, 7))
    loss, grad = fastxent.cross_entropy_with_grad(x, t)
    ref_loss, ref_grad = torch_xent(torch, x, t, axis=1)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-16)
    # (N, T, C) logits with (N, T) labels fit the last axis only.
    y = np.ascontiguousarray(x.transpose(0, 2, 1))
    np.testing.assert_allclose(fastxent.cross_entropy(y, t), ref_loss, rtol=1e-12)
    # rank 4, (N, C, H, W) with (N, H, W)
    x4 = rng.standard_normal((2, 3, 4, 5))
    t4 = rng.integers(0, 3, (2, 4, 5))
    np.testing.assert_allclose(fastxent.nll_loss(x4, t4),
                               torch.nn.functional.nll_loss(torch.tensor(x4),
                                                            torch.tensor(t4)).item(), rtol=1e-12)


def test_rank_2_and_1_default_to_the_last_axis(backend, torch, rng):
    x = rng.standard_normal((6, 6))
    t = rng.integers(0, 6, 6)
    np.testing.assert_allclose(fastxent.cross_entropy(x, t), torch_xent(torch, x, t)[0],
                               rtol=1e-12)
    np.testing.assert_allclose(fastxent.cross_entropy(x[0], t[0]),
                               torch_xent(torch, x[0], t[0])[0], rtol=1e-12)


@pytest.mark.parametrize("shape, target_shape, axis, suggestion", [
    ((4, 5, 7), (4, 5), 1, "axis=2 would fit"),
    ((4, 5, 7), (4, 7), -1, "axis=1 would fit"),
    ((5, 4), (5,), 0, "axis=1 would fit"),
])
def test_shape_errors_suggest_the_axis_that_fits(backend, shape, target_shape, axis, suggestion):
    with pytest.raises(ValueError, match=re.escape(suggestion)):
        fastxent.cross_entropy(np.zeros(shape), np.zeros(target_shape, np.int64), axis=axis)


def test_one_dimensional_logits_with_labels_suggest_the_binary_loss(backend):
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits"):
        fastxent.cross_entropy(np.zeros(5), np.zeros(5, np.int64))


def test_float_labels_raise_the_same_error_in_either_shape(backend):
    x = np.zeros((4, 3))
    for labels in (np.zeros(4), np.zeros((4, 1))):
        with pytest.raises(TypeError, match=r"class indices must be an integer array of shape \(4,\)"):
            fastxent.cross_entropy(x, labels)


def test_integer_labels_with_a_trailing_axis_are_told_to_drop_it(backend):
    with pytest.raises(ValueError, match=re.escape("target.reshape((4,))")):
        fastxent.cross_entropy(np.zeros((4, 3)), np.zeros((4, 1), np.int64))


# ---- habits from other libraries (issue 12, item 8)

@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss_with_grad", "softmax", "logsumexp"])
def test_torch_dim_keyword_names_axis(backend, name):
    fn = getattr(fastxent, name)
    args = (np.zeros((4, 3)), np.zeros(4, np.int64))[:1 if name in ("softmax", "logsumexp") else 2]
    with pytest.raises(TypeError, match=re.escape(f"{name}: unexpected keyword argument 'dim'")
                       + ".*axis="):
        fn(*args, dim=1)


def test_positional_options_are_refused_with_the_keyword_form(backend):
    with pytest.raises(TypeError, match="options are keyword-only.*weight=w"):
        fastxent.cross_entropy(np.zeros((4, 3)), np.zeros(4, np.int64), np.ones(3))
    with pytest.raises(TypeError, match="options are keyword-only"):
        fastxent.reference.binary_cross_entropy(np.full(3, 0.5), np.ones(3), np.ones(3))


def test_type_errors_inside_a_call_are_not_rewritten(backend):
    with pytest.raises(TypeError, match="target: expected integer class indices"):
        fastxent.cross_entropy(np.zeros((4, 3)), np.array(["a"] * 4))
