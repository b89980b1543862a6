"""Scoring chunk by chunk: fastxent.stream against PyTorch and scikit-learn on
the whole data, python -m fastxent score on files (one larger than the memory
its process may use), and sklearn.log_loss's memory."""

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastxent
from fastxent import stream
from fastxent.__main__ import main

RNG = np.random.default_rng(77)


def _blocks(*arrays, sizes=(1, 50, 7, 130)):
    """The arrays cut into consecutive blocks of uneven sizes."""
    start, k, n = 0, 0, len(arrays[0])
    while start < n:
        stop = min(n, start + sizes[k % len(sizes)])
        yield tuple(a[start:stop] for a in arrays)
        start, k = stop, k + 1


def _problem(n=700, c=11, dtype=np.float32):
    x = (RNG.standard_normal((n, c)) * 2).astype(dtype)
    labels = RNG.integers(0, c, n)
    labels[RNG.choice(n, 40, replace=False)] = -100
    return x, labels


# --------------------------------------------------------------------------- fastxent.stream


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_cross_entropy_matches_torch(torch, dtype):
    x, labels = _problem(dtype=dtype)
    weight = RNG.uniform(0.5, 2, x.shape[1])
    r = stream.cross_entropy(_blocks(x, labels), weight=weight, label_smoothing=0.1,
                             accuracy=True)
    xt = torch.tensor(x.astype(np.float64))
    options = dict(weight=torch.tensor(weight), label_smoothing=0.1)
    mean = torch.nn.functional.cross_entropy(xt, torch.tensor(labels), **options).item()
    total = torch.nn.functional.cross_entropy(xt, torch.tensor(labels), reduction="sum",
                                              **options).item()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose([r.mean, r.sum], [mean, total], rtol=rtol)
    counted = labels != -100
    np.testing.assert_allclose(r.count, weight[labels[counted]].sum(), rtol=1e-12)
    assert r.rows == len(labels)
    assert r.accuracy == np.mean(np.argmax(x, axis=1)[counted] == labels[counted])
    np.testing.assert_allclose(r.perplexity, np.exp(mean), rtol=rtol)


def test_stream_probability_targets_match_torch(torch):
    x, _ = _problem(dtype=np.float64)
    q = RNG.dirichlet(np.ones(x.shape[1]), len(x))
    r = stream.cross_entropy(_blocks(x, q), accuracy=True)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(q)).item()
    np.testing.assert_allclose(r.mean, ref, rtol=1e-12)
    assert r.accuracy == np.mean(np.argmax(x, 1) == np.argmax(q, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_log_loss_matches_scikit_learn(dtype):
    metrics = pytest.importorskip("sklearn.metrics")
    p = RNG.dirichlet(np.ones(6) * 0.3, 900).astype(dtype)
    p[5] = np.eye(6)[2]  # probabilities 0 and 1: clipped
    y = RNG.integers(0, 6, 900)
    r = stream.log_loss(_blocks(p, y))
    np.testing.assert_allclose(r.mean, metrics.log_loss(y, p), rtol=1e-6)
    w = RNG.uniform(0.5, 2, 6)
    r = stream.log_loss(_blocks(p, y), weight=w)
    np.testing.assert_allclose(r.mean, metrics.log_loss(y, p, sample_weight=w[y]), rtol=1e-6)


def test_accumulator_add_gives_the_bits_of_update():
    x, labels = _problem()
    a, b = stream.Accumulator(accuracy=True), stream.Accumulator(accuracy=True)
    for xb, tb in _blocks(x, labels):
        a.update(xb, tb)
        b.add(stream.chunk_parts(xb, tb, accuracy=True))
    assert a.result() == b.result()


def test_stream_errors_name_the_position_in_the_whole():
    x, labels = _problem()
    labels = labels.copy()
    labels[400] = 11
    with pytest.raises(IndexError) as in_memory:
        fastxent.cross_entropy(x, labels)
    with pytest.raises(IndexError) as streamed:
        stream.cross_entropy(_blocks(x, labels))
    assert str(streamed.value) == str(in_memory.value)
    p = np.full((300, 4), 0.25)
    y = np.zeros(300, int)
    y[250] = 4
    with pytest.raises(IndexError, match=r"position \(250,\)"):
        stream.log_loss(_blocks(p, y))
    p[260, 0] = 1.5
    y[250] = 0
    with pytest.raises(ValueError, match=r"1.5 at position \(260,\)"):
        stream.log_loss(_blocks(p, y))


def test_nothing_counted_is_nan():
    r = stream.cross_entropy([(np.zeros((3, 2)), np.full(3, -100))], accuracy=True)
    assert np.isnan(r.mean) and np.isnan(r.accuracy) and r.sum == 0 and r.rows == 3


# --------------------------------------------------------------------------- score


def _score(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["score", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def test_score_logits_file_matches_torch(torch, tmp_path):
    x, labels = _problem(n=5000)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", labels)
    code, out, err = _score(tmp_path / "x.npy", tmp_path / "t.npy", "--chunk-rows", 333,
                            "--json", "--progress")
    assert code == 0
    r = json.loads(out)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x.astype(np.float64)),
                                            torch.tensor(labels)).item()
    np.testing.assert_allclose(r["loss"], ref, rtol=1e-6)
    np.testing.assert_allclose(r["perplexity"], np.exp(ref), rtol=1e-6)
    counted = labels != -100
    assert r["accuracy"] == np.mean(np.argmax(x, 1)[counted] == labels[counted])
    assert r["count"] == counted.sum() and r["rows"] == 5000
    assert r["kind"] == "logits (detected)"
    assert "100.0%" in err  # the progress bar, on stderr
    # --from-logits, --ignore-index, and the human-readable output
    labels2 = np.where(labels == -100, 3, labels)
    np.save(tmp_path / "t2.npy", labels2)
    code, out, _ = _score(tmp_path / "x.npy", tmp_path / "t2.npy", "--from-logits",
                          "--ignore-index", 3)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x.astype(np.float64)),
                                            torch.tensor(labels2), ignore_index=3).item()
    assert code == 0 and "cross-entropy" in out
    loss = float(out.split("cross-entropy:")[1].split()[0])
    np.testing.assert_allclose(loss, ref, rtol=1e-6)


def test_score_probabilities_npz_matches_scikit_learn(tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    p = RNG.dirichlet(np.ones(5), 3000).astype(np.float32)
    y = RNG.integers(0, 5, 3000)
    np.savez(tmp_path / "pred.npz", probs=p, other=np.zeros(2))
    np.savez(tmp_path / "y.npz", y)
    code, out, _ = _score(f"{tmp_path / 'pred.npz'}:probs", tmp_path / "y.npz", "--json")
    r = json.loads(out)
    assert code == 0 and r["kind"] == "probs (detected)"
    np.testing.assert_allclose(r["loss"], metrics.log_loss(y, p), rtol=1e-6)
    code, out, _ = _score(tmp_path / "pred.npz", tmp_path / "y.npz", "--probs")
    assert code == 2  # two arrays: which one?


def test_score_class_axis_1_of_rank_3(torch, tmp_path):
    x = RNG.standard_normal((40, 7, 6)).astype(np.float32)
    t = RNG.integers(0, 7, (40, 6))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    code, out, _ = _score(tmp_path / "x.npy", tmp_path / "t.npy", "--axis", 1, "--json",
                          "--chunk-rows", 9, "--from-logits")
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t)).item()
    assert code == 0
    np.testing.assert_allclose(json.loads(out)["loss"], ref, rtol=1e-6)


def _save_zarr(zarr, path, arr, *, rows):
    """arr as a Zarr store at path, in chunks of `rows` rows."""
    store = zarr.open_array(str(path), mode="w", shape=arr.shape, dtype=arr.dtype,
                            chunks=(rows,) + arr.shape[1:])
    store[...] = arr


def test_score_zarr_stores_match_the_in_memory_call(tmp_path):
    """Zarr stores (chunked unlike --chunk-rows), alone or beside a .npy file:
    the loss, accuracy and counts of the in-memory call on the same arrays."""
    zarr = pytest.importorskip("zarr", reason="zarr is not installed")
    x, labels = _problem(n=3000)
    _save_zarr(zarr, tmp_path / "x.zarr", x, rows=700)
    _save_zarr(zarr, tmp_path / "t.zarr", labels, rows=1000)
    np.save(tmp_path / "t.npy", labels)
    counted = labels != -100
    want = fastxent.cross_entropy(x, labels)
    for target in ("t.zarr", "t.npy"):
        code, out, err = _score(tmp_path / "x.zarr", tmp_path / target, "--chunk-rows", 333,
                                "--json", "--from-logits")
        assert code == 0, err
        r = json.loads(out)
        np.testing.assert_allclose(r["loss"], want, rtol=1e-6)
        assert r["accuracy"] == np.mean(np.argmax(x, 1)[counted] == labels[counted])
        assert r["count"] == counted.sum() and r["rows"] == 3000
    metrics = pytest.importorskip("sklearn.metrics")
    p = RNG.dirichlet(np.ones(5), 2000).astype(np.float32)
    y = RNG.integers(0, 5, 2000)
    _save_zarr(zarr, tmp_path / "p.zarr", p, rows=300)
    _save_zarr(zarr, tmp_path / "y.zarr", y, rows=300)
    code, out, err = _score(tmp_path / "p.zarr", tmp_path / "y.zarr", "--json", "--probs")
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)["loss"], metrics.log_loss(y, p), rtol=1e-6)


def test_score_zarr_without_zarr_says_what_to_install(tmp_path, monkeypatch):
    np.save(tmp_path / "t.npy", np.zeros(3, np.int64))
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr: ImportError
    code, out, err = _score(tmp_path / "x.zarr", tmp_path / "t.npy")
    assert code == 2 and out == ""
    assert "reading Zarr needs the zarr package (pip install zarr)" in err


def test_score_reports_bad_input(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    np.save(tmp_path / "t.npy", np.zeros(9, np.int64))
    code, out, err = _score(tmp_path / "x.npy", tmp_path / "t.npy")
    assert code == 2 and "9 rows" in err and out == ""
    bad = np.zeros(10, np.int64)
    bad[7] = 3
    np.save(tmp_path / "t.npy", bad)
    code, _, err = _score(tmp_path / "x.npy", tmp_path / "t.npy", "--chunk-rows", 4)
    assert code == 2 and "class label 3 at position (7,)" in err
    code, _, err = _score(tmp_path / "x.npy", tmp_path / "t.npy", "--axis", 0)
    assert code == 2 and "--axis" in err


def test_score_fortran_ordered_and_unaligned_files_match_torch(torch, tmp_path):
    """Rows whose bytes start anywhere in a page (7 float32 classes, a header
    of any length) and a Fortran-ordered file: the chunks read ahead give the
    whole file's loss and accuracy."""
    x, labels = _problem(n=4099, c=7)
    want = torch.nn.functional.cross_entropy(torch.tensor(x.astype(np.float64)),
                                             torch.tensor(labels)).item()
    counted = labels != -100
    accuracy = np.mean(np.argmax(x, 1)[counted] == labels[counted])
    np.save(tmp_path / "t.npy", labels)
    np.save(tmp_path / "c.npy", x)
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    for name in ("c.npy", "f.npy"):
        for chunk_rows in (1, 97, 4099, 10_000):
            code, out, err = _score(tmp_path / name, tmp_path / "t.npy", "--json",
                                    "--from-logits", "--chunk-rows", chunk_rows)
            assert code == 0, err
            r = json.loads(out)
            np.testing.assert_allclose(r["loss"], want, rtol=1e-6)
            assert r["accuracy"] == accuracy and r["rows"] == 4099


def test_score_truncated_file_is_an_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1000, 8), np.float32))
    np.save(tmp_path / "t.npy", np.zeros(1000, np.int64))
    with open(tmp_path / "x.npy", "r+b") as f:
        f.truncate(os.path.getsize(tmp_path / "x.npy") - 100)
    code, out, err = _score(tmp_path / "x.npy", tmp_path / "t.npy", "--chunk-rows", 300)
    assert code == 2 and out == ""
    assert "x.npy: truncated (32028 bytes; its header says 1000 rows, 32128 bytes)" in err


def test_score_probabilities_accuracy_weights_and_ignored_rows(tmp_path):
    """--probs: scikit-learn's log loss over the counted rows, the accuracy of
    an argmax of the probabilities (ties to the first class, as NumPy's)."""
    metrics = pytest.importorskip("sklearn.metrics")
    p = RNG.dirichlet(np.ones(6) * 0.5, 3000).astype(np.float32)
    p[:50] = np.float32(1 / 6)  # ties: the first class is the prediction
    y = RNG.integers(0, 6, 3000)
    y[RNG.choice(3000, 200, replace=False)] = 5
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    code, out, err = _score(tmp_path / "p.npy", tmp_path / "y.npy", "--json", "--probs",
                            "--ignore-index", 5, "--chunk-rows", 128)
    assert code == 0, err
    r = json.loads(out)
    counted = y != 5
    np.testing.assert_allclose(r["loss"], metrics.log_loss(y[counted], p[counted],
                                                           labels=range(6)), rtol=1e-6)
    assert r["accuracy"] == metrics.accuracy_score(y[counted], np.argmax(p[counted], 1))
    assert r["count"] == counted.sum() and r["kind"] == "probs"
    w = RNG.uniform(0.5, 2, 6)
    got = stream.log_loss(_blocks(p, y), weight=w, accuracy=True)
    np.testing.assert_allclose(got.mean, metrics.log_loss(y, p, sample_weight=w[y]), rtol=1e-6)
    assert got.accuracy == metrics.accuracy_score(y, np.argmax(p, 1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and sparse files")
def test_score_a_file_larger_than_the_memory_allowed(tmp_path):
    """A 1.3 GB file scored by a process limited to 600 MB of address space
    (loading it whole fails there): the rows are read a chunk at a time. The
    file is sparse (mostly zeros on disk); a few rows hold data."""
    n, c, limit = 5_000_000, 64, 600 << 20
    x_path, t_path = tmp_path / "x.npy", tmp_path / "t.npy"
    x = np.lib.format.open_memmap(x_path, "w+", np.float32, (n, c))  # sparse on disk
    t = np.lib.format.open_memmap(t_path, "w+", np.int64, (n,))
    head = RNG.standard_normal((1000, c)).astype(np.float32) * 3
    head_labels = RNG.integers(0, c, 1000)
    x[:1000], t[:1000] = head, head_labels
    x[-1000:], t[-1000:] = head, head_labels
    x.flush(), t.flush()
    del x, t
    assert os.path.getsize(x_path) > 2 * limit
    # Zero rows against label 0 lose log(c) each.
    head_sum = float(fastxent.cross_entropy(head, head_labels, reduction="sum"))
    expected = (2 * head_sum + (n - 2000) * np.log(c)) / n

    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        import numpy as np
        try:
            np.load(sys.argv[1])
        except MemoryError:
            print("whole: MemoryError")
        from fastxent.__main__ import main
        sys.exit(main(["score", sys.argv[1], sys.argv[2], "--json", "--from-logits"]))
    """)
    env = dict(os.environ, FASTXENT_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", code, str(x_path), str(t_path)],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "whole: MemoryError"
    r = json.loads(lines[1])
    np.testing.assert_allclose(r["loss"], expected, rtol=1e-7)  # float32 rows
    assert r["rows"] == n


# --------------------------------------------------------------------------- sklearn.log_loss


def test_log_loss_allocates_no_full_size_copy():
    """Only per-sample temporaries: its peak is well under one copy of y_pred
    (the clipped copy it used to make was one, its log another)."""
    p = RNG.dirichlet(np.ones(50), 40_000)  # 16 MB
    y = RNG.integers(0, 50, 40_000)
    tracemalloc.start()
    try:
        fastxent.sklearn.log_loss(y, p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < p.nbytes / 4


@pytest.mark.parametrize("labels", [
    np.array([0, 1, 2, 3]), np.array([2, 5, 9, 11]), np.array([-7, 0, 4, 30]),
    np.array([3, 4, 5, 6], np.uint64), np.array([0, 10**7, 2 * 10**7, 3 * 10**7]),
    np.array([0, 1, 2, 3], np.int8)])
def test_log_loss_integer_label_encodings_match_scikit_learn(labels):
    metrics = pytest.importorskip("sklearn.metrics")
    y = RNG.choice(labels, 500)
    y[:4] = labels  # every class present
    p = RNG.dirichlet(np.ones(4), 500)
    np.testing.assert_allclose(fastxent.sklearn.log_loss(y, p), metrics.log_loss(y, p),
                               rtol=1e-12)
    np.testing.assert_allclose(fastxent.sklearn.log_loss(y[4:], p[4:], labels=labels),
                               metrics.log_loss(y[4:], p[4:], labels=labels), rtol=1e-12)
