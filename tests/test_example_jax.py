"""examples/jax_mlp_digits.py runs, trains with fastxent.jax and with the
reference loss (optax's, else written out), and the two agree."""

import re
from pathlib import Path

import pytest
from test_examples import run_script

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "jax_mlp_digits.py"
RESULT = re.compile(r"^(\w+): final loss (\S+), train accuracy ([\d.]+)%, "
                    r"test accuracy ([\d.]+)%, ([\d.]+) ms per epoch$", re.MULTILINE)


def test_jax_example_trains_both_ways_alike(tmp_path):
    for module, name in [("jax", "JAX"), ("sklearn.datasets", "scikit-learn"),
                         ("matplotlib", "matplotlib")]:
        pytest.importorskip(module, reason=f"{name} is not installed: the JAX example needs it")
    png = tmp_path / "curves.png"
    proc = run_script(str(EXAMPLE), "--epochs", "4", "--out", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = {m[1]: [float(v) for v in m.groups()[1:]] for m in RESULT.finditer(proc.stdout)}
    assert set(results) in ({"fastxent", "optax"}, {"fastxent", "jax_nn"}), proc.stdout
    (loss, train_acc, test_acc, ms), reference = results.pop("fastxent"), results.popitem()[1]
    # 4 epochs from the same start, on the same batches: well past chance (10%)
    # and below log(10) = 2.3, and the same as with the reference loss.
    assert 0 < loss < 1.0 and train_acc > 80 and test_acc > 80 and ms > 0
    assert loss == pytest.approx(reference[0], rel=1e-4)
    assert abs(train_acc - reference[1]) < 0.2 and abs(test_acc - reference[2]) < 0.5
    gap = float(re.search(r"largest difference between the loss curves: (\S+)", proc.stdout)[1])
    assert gap < 1e-4
