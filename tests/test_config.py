"""Backends, threads, instruction sets and the configuration report."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastxent
from fastxent import _config

compiled_only = pytest.mark.skipif(
    _config._compiled is None, reason="the compiled extension is not built"
)
openmp_only = pytest.mark.skipif(
    _config.config()["openmp"] == "none", reason="serial build: no OpenMP runtime"
)


def run_python(code, **env):
    """Runs `code` in a fresh interpreter with extra environment variables."""
    full_env = {**os.environ, **env}
    for key, value in env.items():
        if value is None:
            full_env.pop(key)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=full_env, timeout=120,
    )


def problem(shape=(300, 37), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * 3
    y = rng.integers(0, shape[-1], shape[:-1])
    return x, y


def test_backend_switch_selects_the_numpy_kernels(monkeypatch):
    calls = []
    real = _config._numpy_kernels.class_loss

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_config._numpy_kernels, "class_loss", spy)
    x, y = problem()
    previous = fastxent.get_backend()
    try:
        fastxent.set_backend("numpy")
        assert fastxent.get_backend() == "numpy"
        fastxent.cross_entropy(x, y)
        assert calls == [1]
        if _config._compiled is not None:
            fastxent.set_backend("compiled")
            assert fastxent.get_backend() == "compiled"
            fastxent.cross_entropy(x, y)
            assert calls == [1]
    finally:
        fastxent.set_backend(previous)


def test_set_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="'gpu'"):
        fastxent.set_backend("gpu")


def test_env_selects_numpy_backend():
    r = run_python("import fastxent; print(fastxent.get_backend())", FASTXENT_BACKEND="numpy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy"


def test_import_falls_back_to_numpy_when_extension_is_missing():
    code = """
        import sys, warnings
        import numpy as np

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "fastxent._kernels":
                    raise ImportError("simulated: no compiled extension")

        sys.meta_path.insert(0, Block())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import fastxent
            import fastxent.reference
        print(fastxent.get_backend())
        print(sum("compiled kernels cannot be imported" in str(w.message) for w in caught))
        x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
        loss = fastxent.cross_entropy(x, np.array([2, 0]))
        print(repr(float(loss)))
        try:
            fastxent.set_backend("compiled")
        except RuntimeError as exc:
            print("refused")
    """
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    backend, n_warnings, loss, refused = r.stdout.split()
    assert backend == "numpy"
    assert n_warnings == "1"
    # log-softmax by hand: row 1 picks class 2 of [1,2,3]; row 2 is uniform over 3.
    expected = (np.log(np.exp([1.0, 2.0, 3.0]).sum()) - 3.0 + np.log(3.0)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert refused == "refused"


def test_set_num_threads_and_context_manager():
    before = fastxent.get_num_threads()
    with fastxent.num_threads(3) as n:
        assert n == 3
        assert fastxent.get_num_threads() == 3
        with fastxent.num_threads(1):
            assert fastxent.get_num_threads() == 1
        assert fastxent.get_num_threads() == 3
    assert fastxent.get_num_threads() == before


def test_set_num_threads_process_wide():
    previous = _config._state["threads"]
    try:
        fastxent.set_num_threads(2)
        assert fastxent.get_num_threads() == 2
    finally:
        _config._state["threads"] = previous


@pytest.mark.parametrize("bad", [0, -1, np.int64(0)])
def test_thread_counts_below_one_are_rejected(bad):
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        fastxent.set_num_threads(bad)
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        with fastxent.num_threads(bad):
            pass


@pytest.mark.parametrize("bad", [True, False, np.True_, 1.5, 2.0, "2", None])
def test_thread_counts_that_are_not_integers_are_type_errors(bad):
    # A bool is not a thread count, as for the integer options (True == 1).
    previous = _config._state["threads"]
    with pytest.raises(TypeError, match="n: expected an integer number of threads"):
        fastxent.set_num_threads(bad)
    with pytest.raises(TypeError, match="n: expected an integer number of threads"):
        with fastxent.num_threads(bad):
            pass
    assert _config._state["threads"] == previous


def test_context_manager_is_per_python_thread():
    import threading

    def seen_by_another_thread():
        seen = []
        t = threading.Thread(target=lambda: seen.append(fastxent.get_num_threads()))
        t.start()
        t.join()
        return seen[0]

    before = seen_by_another_thread()
    with fastxent.num_threads(before + 1):
        assert fastxent.get_num_threads() == before + 1
        assert seen_by_another_thread() == before


@openmp_only
@pytest.mark.parametrize(
    "env, expected",
    [
        ({"FASTXENT_NUM_THREADS": "3", "OMP_NUM_THREADS": "2"}, "3"),
        ({"FASTXENT_NUM_THREADS": None, "OMP_NUM_THREADS": "2"}, "2"),
        ({"FASTXENT_NUM_THREADS": None, "OMP_NUM_THREADS": "1"}, "1"),
    ],
)
def test_thread_defaults_from_environment(env, expected):
    r = run_python("import fastxent; print(fastxent.get_num_threads())", **env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected


@openmp_only
def test_default_threads_are_the_cpus_this_process_may_use():
    r = run_python(
        "import fastxent; print(fastxent.get_num_threads())",
        FASTXENT_NUM_THREADS=None, OMP_NUM_THREADS=None,
    )
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == len(os.sched_getaffinity(0))


@openmp_only
def test_threadpoolctl_sees_and_limits_the_openmp_runtime():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    library = _config._compiled.build_info()["openmp_library"]
    listed = [p["filepath"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "openmp"]
    assert any(os.path.realpath(p) == os.path.realpath(library) for p in listed), (library, listed)
    previous = _config._state["threads"]
    _config._state["threads"] = None
    try:
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            assert fastxent.get_num_threads() == 1
    finally:
        _config._state["threads"] = previous


@compiled_only
@pytest.mark.parametrize("shape", [(5000, 37), (3, 70000), (64, 4096)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_results_are_bit_identical_for_any_thread_count(shape, reduction):
    x, y = problem(shape)
    w = np.random.default_rng(1).random(shape[-1]).astype(np.float32)
    results = []
    for n in (1, 2, 3, 7):
        with fastxent.num_threads(n):
            results.append(fastxent.cross_entropy_with_grad(
                x, y, weight=w, label_smoothing=0.1, reduction=reduction))
    for loss, grad in results[1:]:
        assert np.array_equal(loss, results[0][0])
        assert np.array_equal(grad, results[0][1])


@compiled_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_instruction_set_agrees_with_float64_reference(dtype):
    """The baseline, AVX2 and AVX-512 paths (where the CPU has them) give the
    same losses, to rounding, as a float64 NumPy computation."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((200, 531)) * 20).astype(dtype)
    y = rng.integers(0, 531, 200)
    shifted = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected_loss = -log_p[np.arange(200), y]
    expected_grad = np.exp(log_p)
    expected_grad[np.arange(200), y] -= 1
    tol = 1e-5 if dtype == np.float32 else 1e-13
    in_use = []
    previous_cap = _config.config()["simd"].split()[0]  # e.g. "avx2", "baseline (x86-64 SSE2)"
    try:
        for cap in _config.ISA_CAPS:
            in_use.append(fastxent._config.set_isa(cap))
            loss, grad = fastxent.cross_entropy_with_grad(x, y, reduction="none")
            np.testing.assert_allclose(loss, expected_loss, rtol=tol, atol=tol)
            np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol)
    finally:
        fastxent._config.set_isa(previous_cap)
    assert in_use[0].startswith("baseline")


def test_show_config_and_info_command(capsys):
    fastxent.show_config()
    printed = capsys.readouterr().out
    for key in ("version", "backend", "compiler", "openmp", "simd", "threads"):
        assert f"{key}:" in printed
    assert fastxent.__version__ in printed
    r = subprocess.run([sys.executable, "-m", "fastxent", "info"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"backend: {fastxent.get_backend()}" in r.stdout
