"""The parts of a reduced loss that chunked callers add up (fastxent._partials):
a problem cut into chunks gives, summed part by part, PyTorch's mean and the
gradient of the mean."""

import numpy as np
import pytest

from fastxent._partials import binary_loss_parts, class_loss_parts


def _chunks(n, sizes=(1, 3, 7)):
    start, k = 0, 0
    while start < n:
        stop = min(n, start + sizes[k % len(sizes)])
        yield slice(start, stop)
        start, k = stop, k + 1


# (probabilities, log_probs): nll_loss takes class indices only.
@pytest.mark.parametrize("probabilities, log_probs", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("weighted", [False, True])
def test_class_parts_add_up_to_torch_mean(torch, probabilities, weighted, log_probs):
    rng = np.random.default_rng(5)
    n, c = 23, 6
    x = rng.standard_normal((n, c))
    if log_probs:
        x = x - np.log(np.exp(x).sum(1, keepdims=True))
    target = rng.dirichlet(np.ones(c), n) if probabilities else rng.integers(0, c, n)
    if not probabilities:
        target[[2, 9, 10]] = -100
    weight = rng.uniform(0.5, 2.0, c) if weighted else None
    smoothing = 0.0 if log_probs else 0.15
    total, denom, grad = 0.0, 0.0, np.empty_like(x)
    for s in _chunks(n):
        part = class_loss_parts(x[s], target[s], weight=weight, label_smoothing=smoothing,
                                want_grad=True, log_probs=log_probs)
        total, denom = total + part.loss_sum, denom + part.denominator
        grad[s] = part.grad
    xt = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(target)
    wt = None if weight is None else torch.tensor(weight)
    if log_probs:
        ref = torch.nn.functional.nll_loss(xt, tt, weight=wt)
    else:
        ref = torch.nn.functional.cross_entropy(xt, tt, weight=wt, label_smoothing=smoothing)
    ref.backward()
    np.testing.assert_allclose(total / denom, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad / denom, xt.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_parts_add_up_to_torch_mean(torch, from_logits):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((17, 3)) if from_logits else rng.uniform(0.01, 0.99, (17, 3))
    t = rng.uniform(0, 1, (17, 3))
    w = rng.uniform(0.5, 2, 3)
    total, count, grad = 0.0, 0.0, np.empty_like(x)
    for s in _chunks(17):
        part = binary_loss_parts(x[s], t[s], weight=w, want_grad=True, from_logits=from_logits)
        total, count = total + part.loss_sum, count + part.denominator
        grad[s] = part.grad
    xt = torch.tensor(x, requires_grad=True)
    fn = (torch.nn.functional.binary_cross_entropy_with_logits if from_logits
          else torch.nn.functional.binary_cross_entropy)
    ref = fn(xt, torch.tensor(t), weight=torch.tensor(w))
    ref.backward()
    np.testing.assert_allclose(total / count, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad / count, xt.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_class_parts_check_their_arguments():
    with pytest.raises(IndexError, match="target"):
        class_loss_parts(np.zeros((2, 3)), np.array([0, 3]))
