"""fastxent.dask: every function against the in-memory call (itself checked
against PyTorch and SciPy elsewhere) and, for the losses, against PyTorch
directly; rows and classes chunked; errors located in the whole array; on a
dask.distributed cluster, every function once more, the same bits as on
threads, and a worker killed mid-computation.

The sweeps over options run on Dask's threaded scheduler (the same graphs;
a small cluster on a busy machine adds seconds a graph). The cluster is a
LocalCluster of two worker processes on the loopback interface, started once
for this module. To run these tests on an existing
cluster instead, give its scheduler's address:

    FASTXENT_DASK_SCHEDULER=tcp://host:8786 pytest tests/test_dask.py

(the workers must import the same fastxent; the test that kills a worker then
skips).
"""

import os
import signal
import time
import warnings

import numpy as np
import pytest

import fastxent

pytest.importorskip("dask.array", reason="dask is not installed: pip install 'fastxent[dask]'")
distributed = pytest.importorskip("dask.distributed",
                                  reason="dask.distributed is not installed")
import dask
import dask.array as da

import fastxent.dask as fd
from fastxent import _score

EXTERNAL = os.environ.get("FASTXENT_DASK_SCHEDULER")


@pytest.fixture
def threads():
    """Dask's threaded scheduler, even while the module's cluster client exists."""
    with dask.config.set(scheduler="threads"):
        yield


@pytest.fixture(scope="module")
def client():
    if EXTERNAL:
        with distributed.Client(EXTERNAL) as c:
            yield c
        return
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


RNG = np.random.default_rng(1234)
N, C = 41, 9
ROW_CHUNKS = (10, C)  # whole rows in each block
SPLIT_CHUNKS = (10, 4)  # the class axis split too: 3 class blocks a row


def _data(dtype=np.float64):
    x = (RNG.standard_normal((N, C)) * 3).astype(dtype)
    labels = RNG.integers(0, C, N)
    labels[[0, 7, 30]] = -100  # ignored rows
    probs = RNG.dirichlet(np.ones(C), N).astype(dtype)
    weight = RNG.uniform(0.5, 2.0, C).astype(dtype)
    return x, labels, probs, weight


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)


def _close(actual, expected, dtype):
    actual = np.asarray(actual)
    assert actual.dtype == np.asarray(expected).dtype
    np.testing.assert_allclose(actual, expected, **_tol(dtype))


# --------------------------------------------------------------------------- class losses


@pytest.mark.parametrize("chunks", [ROW_CHUNKS, SPLIT_CHUNKS], ids=["rows", "rows+classes"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_matches_in_memory(threads, chunks, dtype):
    x, labels, probs, weight = _data(dtype)
    xd = da.from_array(x, chunks=chunks)
    cases = []
    for target in (labels, probs):
        for options in ({}, {"weight": weight, "label_smoothing": 0.1}):
            for reduction in ("mean", "sum", "none"):
                cases.append((target, dict(options, reduction=reduction)))
    cases.append((labels, dict(label_smoothing=0.2)))
    cases.append((labels, dict(weight=weight, reduction="sum")))
    lazy = [fd.cross_entropy_with_grad(xd, t, **o) + (fd.cross_entropy(xd, t, **o),)
            for t, o in cases]
    for (t, o), (loss, grad, loss_only) in zip(cases, dask.compute(*lazy)):
        ref_loss, ref_grad = fastxent.cross_entropy_with_grad(x, t, **o)
        _close(loss, ref_loss, dtype)
        _close(loss_only, ref_loss, dtype)
        _close(grad, ref_grad, dtype)


@pytest.mark.parametrize("chunks", [ROW_CHUNKS, SPLIT_CHUNKS], ids=["rows", "rows+classes"])
def test_cross_entropy_against_torch(threads, torch, chunks):
    x, labels, _, weight = _data()
    xd = da.from_array(x, chunks=chunks)
    loss, grad = dask.compute(*fd.cross_entropy_with_grad(xd, labels, weight=weight,
                                                         label_smoothing=0.1))
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(xt, torch.tensor(labels), weight=torch.tensor(weight),
                                            label_smoothing=0.1)
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("chunks", [ROW_CHUNKS, SPLIT_CHUNKS], ids=["rows", "rows+classes"])
def test_nll_loss_matches_in_memory(threads, chunks):
    x, labels, _, weight = _data()
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    lp = da.from_array(log_p, chunks=chunks)
    cases = [dict(weight=w, reduction=r) for w in (None, weight) for r in ("mean", "sum", "none")]
    lazy = [fd.nll_loss_with_grad(lp, labels, **o) + (fd.nll_loss(lp, labels, **o),)
            for o in cases]
    for o, (loss, grad, loss_only) in zip(cases, dask.compute(*lazy)):
        ref_loss, ref_grad = fastxent.nll_loss_with_grad(log_p, labels, **o)
        _close(loss, ref_loss, np.float64)
        _close(loss_only, ref_loss, np.float64)
        _close(grad, ref_grad, np.float64)


def test_class_axis_and_rank_3(threads):
    """Classes on axis 1 of (batch, classes, positions), split across blocks."""
    x = RNG.standard_normal((6, C, 5))
    labels = RNG.integers(0, C, (6, 5))
    labels[2, 3] = -100
    for chunks in ((3, C, 5), (3, 4, 2)):
        xd = da.from_array(x, chunks=chunks)
        loss, grad, rows = dask.compute(*fd.cross_entropy_with_grad(xd, labels, axis=1),
                                        fd.cross_entropy(xd, labels, axis=1, reduction="none"))
        ref_loss, ref_grad = fastxent.cross_entropy_with_grad(x, labels, axis=1)
        _close(loss, ref_loss, np.float64)
        _close(grad, ref_grad, np.float64)
        _close(rows, fastxent.cross_entropy(x, labels, axis=1, reduction="none"), np.float64)


def test_same_bits_whatever_the_scheduler(client):
    """The same chunking gives the same bits on the cluster, on threads and in
    one thread: the tree of partial sums is fixed by the chunks."""
    x = RNG.standard_normal((3000, 50)).astype(np.float32)
    labels = RNG.integers(0, 50, 3000)
    for chunks in ((250, 50), (250, 20)):
        xd = da.from_array(x, chunks=chunks)
        lazy = (fd.cross_entropy(xd, labels, label_smoothing=0.1),
                fd.cross_entropy_with_grad(xd, labels)[1])
        on_cluster = dask.compute(*lazy)
        threaded = dask.compute(*lazy, scheduler="threads")
        serial = dask.compute(*lazy, scheduler="synchronous")
        for a, b, c in zip(on_cluster, threaded, serial):
            assert a.tobytes() == b.tobytes() == c.tobytes()
        _close(on_cluster[0], fastxent.cross_entropy(x, labels, label_smoothing=0.1), np.float32)


def test_gradients_are_lazy_with_the_logits_chunks():
    """Nothing runs until compute: no block of the logits is read before."""
    reads = []

    def note(block):
        if block.size > 1:  # not dask's probes of the output type on tiny arrays
            reads.append(block.shape)
        return block

    x = da.from_array(RNG.standard_normal((40, 6)), chunks=(10, 3)).map_blocks(note)
    labels = RNG.integers(0, 6, 40)
    loss, grad = fd.cross_entropy_with_grad(x, labels)
    soft = fd.softmax(x)
    assert reads == []
    assert grad.chunks == x.chunks and soft.chunks == x.chunks
    with dask.config.set(scheduler="synchronous"):
        loss.compute()
    assert reads  # the logits were read when asked for


# --------------------------------------------------------------------------- binary losses


@pytest.mark.parametrize("chunks", [(10, 9), (10, 4)])
def test_binary_losses_match_in_memory(threads, chunks):
    x, _, _, weight = _data()
    target = RNG.uniform(0, 1, x.shape)
    probs = 1 / (1 + np.exp(-x))
    pos_weight = RNG.uniform(0.5, 3, C)
    sample_weight = RNG.uniform(0, 1, (N, 1))
    cases = [("binary_cross_entropy_with_logits", x, dict(weight=weight, pos_weight=pos_weight)),
             ("binary_cross_entropy_with_logits", x, dict(weight=sample_weight)),
             ("binary_cross_entropy", probs, dict(weight=weight)),
             ("binary_cross_entropy", probs, {})]
    lazy, expected = [], []
    for name, inputs, options in cases:
        xd = da.from_array(inputs, chunks=chunks)
        for reduction in ("mean", "sum", "none"):
            o = dict(options, reduction=reduction)
            lazy.append(getattr(fd, name + "_with_grad")(xd, target, **o)
                        + (getattr(fd, name)(xd, target, **o),))
            expected.append(getattr(fastxent, name + "_with_grad")(inputs, target, **o))
    for (loss, grad, loss_only), (ref_loss, ref_grad) in zip(dask.compute(*lazy), expected):
        _close(loss, ref_loss, np.float64)
        _close(loss_only, ref_loss, np.float64)
        _close(grad, ref_grad, np.float64)


# --------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("chunks", [(10, 9), (10, 4), (41, 1)])
def test_building_blocks_match_in_memory(threads, chunks):
    x, _, p, _ = _data()
    q = RNG.dirichlet(np.ones(C), N)
    xd, pd = da.from_array(x, chunks=chunks), da.from_array(p, chunks=chunks)
    lazy = (fd.softmax(xd), fd.log_softmax(xd), fd.logsumexp(xd), fd.entropy(pd),
            fd.entropy(pd, base=2), fd.kl_divergence(pd, q), fd.softmax(xd.T, axis=0))
    expected = (fastxent.softmax(x), fastxent.log_softmax(x), fastxent.logsumexp(x),
                fastxent.entropy(p), fastxent.entropy(p, base=2), fastxent.kl_divergence(p, q),
                fastxent.softmax(x.T, axis=0))
    for got, ref in zip(dask.compute(*lazy), expected):
        _close(got, ref, np.float64)


def test_blocks_of_infinities_merge_as_in_memory(threads):
    """Class blocks that are all -inf add nothing to a row's log-sum-exp, and a
    +inf makes it +inf (the merge of fastxent._lse), as the whole-row kernels."""
    x = np.array([[1.0, 2.0, -np.inf, -np.inf, 0.5, 3.0],
                  [-np.inf, -np.inf, 2.0, -1.0, -np.inf, -np.inf],
                  [0.5, np.inf, 1.0, 2.0, -np.inf, 0.0],
                  [-np.inf] * 6,
                  [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    labels = np.array([0, 2, 0, 1, 5])
    xd = da.from_array(x, chunks=(2, 2))
    with np.errstate(invalid="ignore"):
        expected = (fastxent.logsumexp(x), fastxent.log_softmax(x), fastxent.softmax(x),
                    *fastxent.cross_entropy_with_grad(x[[0, 1, 4]], labels[[0, 1, 4]],
                                                      label_smoothing=0.1),
                    fastxent.cross_entropy(x, labels, reduction="none"))
        got = dask.compute(fd.logsumexp(xd), fd.log_softmax(xd), fd.softmax(xd),
                           *fd.cross_entropy_with_grad(xd[[0, 1, 4]], labels[[0, 1, 4]],
                                                       label_smoothing=0.1),
                           fd.cross_entropy(xd, labels, reduction="none"))
    for g, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-300)


def test_log_loss_matches_scikit_learn(threads):
    metrics = pytest.importorskip("sklearn.metrics")
    y = RNG.choice(np.array([3, 5, 8, 11]), 500)
    p = RNG.dirichlet(np.ones(4), 500).astype(np.float32)
    w = RNG.uniform(0, 2, 500)
    pd = da.from_array(p, chunks=(64, 4))
    yd = da.from_array(y, chunks=64)
    got = dask.compute(fd.log_loss(yd, pd), fd.log_loss(yd, pd, sample_weight=w),
                       fd.log_loss(y, pd, normalize=False),
                       fd.log_loss(yd, pd, labels=[3, 5, 8, 11]))
    expected = (metrics.log_loss(y, p), metrics.log_loss(y, p, sample_weight=w),
                metrics.log_loss(y, p, normalize=False),
                metrics.log_loss(y, p, labels=[3, 5, 8, 11]))
    np.testing.assert_allclose(got, expected, rtol=2e-6)
    binary = RNG.uniform(0.01, 0.99, 300)
    yb = RNG.integers(0, 2, 300)
    np.testing.assert_allclose(fd.log_loss(yb, da.from_array(binary, chunks=50)).compute(),
                               metrics.log_loss(yb, binary), rtol=1e-12)


def test_log_loss_warns_the_caller_as_in_memory(threads):
    """The warnings of fastxent.sklearn.log_loss reach the caller: rows that do
    not sum to one (once, whatever the number of blocks), unsorted labels= (at
    once); none for real probabilities."""
    y = np.arange(40) % 4
    off = np.full((40, 4), 0.3)
    with pytest.warns(UserWarning, match="y_proba: some rows do not sum to one") as record:
        got = fd.log_loss(y, da.from_array(off, chunks=(10, 4))).compute()
    assert len(record) == 1
    with pytest.warns(UserWarning, match="y_proba: some rows do not sum to one"):
        assert got == fastxent.sklearn.log_loss(y, off)
    with pytest.warns(UserWarning, match=r"labels: \[3, 0, 1, 2\] are not sorted"):
        lazy = fd.log_loss(y, da.from_array(off / 1.2, chunks=(10, 4)), labels=[3, 0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lazy.compute()
        fd.log_loss(y, da.from_array(off / 1.2, chunks=(10, 4)), sample_weight=y).compute()


def test_log_loss_warning_reaches_the_client_from_the_cluster(client):
    """Raised on a worker, the warning is sent to the client (dask.distributed's warn)."""
    y = np.arange(40) % 4
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fd.log_loss(y, da.from_array(np.full((40, 4), 0.3), chunks=(10, 4))).compute()
        deadline = time.monotonic() + 10  # the worker's event may follow the result
        while not record and time.monotonic() < deadline:
            time.sleep(0.05)
    messages = [str(r.message) for r in record]
    assert "y_proba: some rows do not sum to one; make sure to pass probabilities" in messages


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("chunks", [ROW_CHUNKS, SPLIT_CHUNKS], ids=["rows", "rows+classes"])
def test_bad_label_raises_the_in_memory_error(client, chunks):
    x, labels, _, _ = _data()
    labels = labels.copy()
    labels[33] = C  # in the fourth block of rows
    with pytest.raises(IndexError) as in_memory:
        fastxent.cross_entropy(x, labels)
    xd = da.from_array(x, chunks=chunks)
    for lazy in (fd.cross_entropy(xd, labels), fd.cross_entropy_with_grad(xd, labels)[1]):
        with pytest.raises(IndexError) as on_dask:
            lazy.compute()
        assert str(on_dask.value) == str(in_memory.value)
        assert "(33,)" in str(on_dask.value)


def test_bad_probability_raises_the_in_memory_error(threads):
    p = RNG.uniform(0, 1, (20, 6))
    p[13, 4] = 1.5
    t = RNG.uniform(0, 1, (20, 6))
    with pytest.raises(ValueError) as in_memory:
        fastxent.binary_cross_entropy(p, t)
    with pytest.raises(ValueError) as on_dask:
        fd.binary_cross_entropy(da.from_array(p, chunks=(5, 4)), t).compute()
    assert str(on_dask.value) == str(in_memory.value)
    assert "(13, 4)" in str(on_dask.value)


def test_bad_arguments_raise_at_once():
    xd = da.zeros((10, 4), chunks=5)
    with pytest.raises(ValueError, match="reduction"):
        fd.cross_entropy(xd, np.zeros(10, int), reduction="avg")
    with pytest.raises(ValueError, match="class indices must have shape"):
        fd.cross_entropy(xd, np.zeros(9, int))
    with pytest.raises(ValueError, match="weight"):
        fd.cross_entropy(xd, np.zeros(10, int), weight=np.ones(3))
    with pytest.raises(TypeError, match="target"):
        fd.nll_loss(xd, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="pos_weight"):
        fd.binary_cross_entropy_with_logits(xd, xd, pos_weight=np.ones(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        fd.cross_entropy(xd, np.zeros(10, int), label_smoothing=2)
    with pytest.raises(ValueError, match="labels: must contain at least two classes"):
        fd.log_loss(np.zeros(10, int), xd, labels=[0])


# --------------------------------------------------------------------------- on the cluster


def test_every_function_on_the_cluster(client):
    """Each function once on the cluster's worker processes, rows and classes
    chunked, with ignored rows, weights and smoothing: one graph, one round trip."""
    x, labels, probs, weight = _data(np.float32)
    log_p = x - np.log(np.exp(x.astype(np.float64)).sum(axis=1, keepdims=True)).astype(np.float32)
    target = RNG.uniform(0, 1, x.shape).astype(np.float32)
    p01 = (1 / (1 + np.exp(-x))).astype(np.float32)
    y = RNG.integers(0, C, N)
    lazy, expected = [], []

    def check(name, *args, **options):
        dask_args = [da.from_array(a, chunks=chunks) if a.ndim == 2 else a for a in args]
        result = getattr(fd, name)(*dask_args, **options)
        lazy.append(result)
        expected.append(getattr(fastxent, name)(*args, **options))

    for chunks in (ROW_CHUNKS, (21, 4)):
        check("cross_entropy_with_grad", x, labels, weight=weight, label_smoothing=0.1)
        check("cross_entropy", x, probs, label_smoothing=0.2, reduction="sum")
        check("cross_entropy", x, labels, reduction="none")
        check("nll_loss_with_grad", log_p, labels, weight=weight)
        check("nll_loss", log_p, labels, reduction="sum")
        check("binary_cross_entropy_with_logits_with_grad", x, target, pos_weight=weight)
        check("binary_cross_entropy_with_logits", x, target, weight=weight, reduction="none")
        check("binary_cross_entropy_with_grad", p01, target)
        check("binary_cross_entropy", p01, target, weight=weight, reduction="sum")
        check("softmax", x)
        check("log_softmax", x)
        check("logsumexp", x)
        check("entropy", probs)
        check("kl_divergence", probs, p01)
    for got, ref in zip(dask.compute(*lazy), expected):
        for g, r in zip(got if isinstance(got, tuple) else (got,),
                        ref if isinstance(ref, tuple) else (ref,)):
            _close(g, r, np.float32)
    got = fd.log_loss(y, da.from_array(probs, chunks=(21, C)), sample_weight=weight[y]).compute()
    np.testing.assert_allclose(got, fastxent.sklearn.log_loss(y, probs, sample_weight=weight[y]),
                               rtol=1e-12)



def _slow_block(block):
    time.sleep(0.15)
    return block


def test_result_survives_a_killed_worker(client):
    """A worker process killed mid-computation: Dask reruns its tasks elsewhere
    and the result is still the in-memory one."""
    if EXTERNAL:
        pytest.skip("does not kill the workers of an external cluster")
    x = RNG.standard_normal((4000, 20))
    labels = RNG.integers(0, 20, 4000)
    slow = da.from_array(x, chunks=(200, 20)).map_blocks(lambda b: _slow_block(b))
    future = client.compute(fd.cross_entropy(slow, labels))
    deadline = time.monotonic() + 30
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.4)  # a few blocks done, others running
    assert not future.done()
    pids = client.run(os.getpid)
    victim = min(pids)
    os.kill(pids[victim], signal.SIGKILL)
    np.testing.assert_allclose(future.result(timeout=60), fastxent.cross_entropy(x, labels),
                               rtol=1e-12)
    client.wait_for_workers(2, timeout=30)


# --------------------------------------------------------------------------- score --scheduler


def test_score_on_the_cluster_gives_the_local_bits(client, tmp_path):
    if EXTERNAL:
        pytest.skip("the cluster's workers may not see this machine's files")
    x = RNG.standard_normal((5000, 12)).astype(np.float32)
    labels = RNG.integers(0, 12, 5000)
    labels[::97] = -100
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", labels)
    address = client.scheduler.address
    local = _score.score(str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), chunk_rows=700)
    remote = _score.score(str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), chunk_rows=700,
                          scheduler=address)
    for key in ("loss", "sum", "count", "accuracy", "rows"):
        assert local[key] == remote[key], key
    np.testing.assert_allclose(local["loss"], fastxent.cross_entropy(x, labels), rtol=1e-6)


def test_import_fastxent_leaves_dask_alone():
    """fastxent.dask imports Dask; import fastxent does not."""
    import subprocess
    import sys

    code = ("import sys, fastxent, fastxent.stream; "
            "assert 'dask' not in sys.modules and 'distributed' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
