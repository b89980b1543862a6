"""fastxent.keras on Keras's JAX and PyTorch backends: each backend in a
process of its own (Keras picks its backend once, at import), running
keras_backend_check.py, which compares the loss classes' values and
gradients with keras.losses' classes, the ignore_class mask in a metric, and
a model trained with fastxent's loss with one trained with Keras's."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastxent

SKIP = 77  # the script's exit status when this Keras is not Keras 3
SCRIPT = Path(__file__).resolve().parent / "keras_backend_check.py"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_backend_trains_and_matches_keras(backend):
    # Keras is imported in the script only, once its backend is chosen (here
    # it would import with its default, TensorFlow's).
    if importlib.util.find_spec("keras") is None:
        pytest.skip("Keras is not installed: fastxent.keras on Keras's backends not tested")
    pytest.importorskip(backend, reason=f"{backend} is not installed: Keras's {backend} "
                                        "backend not tested")
    package_root = str(Path(fastxent.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(SCRIPT), backend], capture_output=True,
                          text=True, env=env, timeout=900, check=False)
    if proc.returncode == SKIP:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("all checks passed"), proc.stdout
