"""The scripts in examples/ run, print what they promise and write their files."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastxent

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIGITS = EXAMPLES / "softmax_regression_digits.py"
RESULT = re.compile(r"^(\w+): final loss (\S+), train accuracy ([\d.]+)%, "
                    r"test accuracy ([\d.]+)%, ([\d.]+) s$", re.MULTILINE)


@pytest.fixture
def digits_needs():
    pytest.importorskip("sklearn.datasets",
                        reason="scikit-learn is not installed: the digits example needs its data")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: the digits example "
                                             "plots with it")


def run_script(*args):
    """Runs python with args, finding this fastxent whether installed or not."""
    package_root = str(Path(fastxent.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=600)


def parse_results(stdout):
    """backend -> (final loss, train accuracy, test accuracy, seconds)."""
    return {m[1]: (float(m[2]), float(m[3]) / 100, float(m[4]) / 100, float(m[5]))
            for m in RESULT.finditer(stdout)}


def compiled_available():
    previous = fastxent.get_backend()
    try:
        fastxent.set_backend("compiled")
    except RuntimeError:
        return False
    fastxent.set_backend(previous)
    return True


def test_digits_example_runs_and_plots(digits_needs, tmp_path):
    png = tmp_path / "curves.png"
    proc = run_script(str(DIGITS), "--epochs", "20", "--out", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = parse_results(proc.stdout)
    expected = {"compiled", "numpy"} if compiled_available() else {"numpy"}
    assert set(results) == expected, proc.stdout
    for loss, train_acc, test_acc, seconds in results.values():
        # 20 steps from zero weights already get well past chance (10%).
        assert 0 < loss < 2.3  # below log(10), the loss of the zero start
        assert 0.8 < train_acc <= 1 and 0.8 < test_acc <= 1
        assert seconds >= 0
    if len(results) == 2:
        # The same steps from the same start: the backends agree to rounding.
        assert results["compiled"][0] == pytest.approx(results["numpy"][0], rel=1e-9)
        assert results["compiled"][1:3] == results["numpy"][1:3]


def test_digits_example_defaults_reach_90_percent(digits_needs):
    # The default epochs and learning rate, on the current backend.
    spec = importlib.util.spec_from_file_location("softmax_regression_digits", DIGITS)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    args = example.parse_args([])
    X_train, y_train, X_test, y_test = example.load_digits_split()
    W, b, losses = example.train(X_train, y_train, 10, args.epochs, args.lr)
    assert example.accuracy(X_test, y_test, W, b) > 0.9
    assert losses[-1] < losses[0] / 5  # from log(10) = 2.30 to below 0.46


@pytest.mark.parametrize("module, name", [("matplotlib", "matplotlib"),
                                          ("sklearn", "scikit-learn")])
def test_digits_example_without_a_dependency_says_so(tmp_path, module, name):
    if module == "sklearn":  # the example checks for matplotlib first
        pytest.importorskip("matplotlib", reason="matplotlib is not installed: the example "
                                                 "stops at it before it looks for scikit-learn")
    png = tmp_path / "curves.png"
    # sys.modules[module] = None makes `import module` raise ImportError.
    code = (f"import runpy, sys; sys.modules[{module!r}] = None; "
            f"sys.argv = [{str(DIGITS)!r}, '--epochs', '1', '--out', {str(png)!r}]; "
            f"runpy.run_path({str(DIGITS)!r}, run_name='__main__')")
    proc = run_script("-c", code)
    assert proc.returncode == 1
    assert f"pip install {name}" in proc.stderr
    assert not png.exists()


TORCH_MLP = EXAMPLES / "torch_mlp_digits.py"
TORCH_RESULT = re.compile(r"^(\w+): final loss (\S+), train accuracy ([\d.]+)%, "
                          r"test accuracy ([\d.]+)%, ([\d.]+) s per epoch$", re.MULTILINE)


def test_torch_mlp_example_trains_alike_with_both_losses(digits_needs, tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed: the example needs it")
    png = tmp_path / "curves.png"
    proc = run_script(str(TORCH_MLP), "--epochs", "4", "--out", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = {m[1]: (float(m[2]), float(m[3]) / 100, float(m[4]) / 100, float(m[5]))
               for m in TORCH_RESULT.finditer(proc.stdout)}
    assert set(results) == {"fastxent", "torch"}, proc.stdout
    for loss, train_acc, test_acc, seconds in results.values():
        assert 0 < loss < 0.5  # from log(10) = 2.3 at the start
        assert 0.9 < train_acc <= 1 and 0.85 < test_acc <= 1
        assert seconds > 0
    # The same function on the same batches: float32 rounding apart, one curve.
    gap = float(re.search(r"loss curves: (\S+)$", proc.stdout, re.MULTILINE)[1])
    assert gap < 1e-4
    assert results["fastxent"][0] == pytest.approx(results["torch"][0], rel=1e-4)
