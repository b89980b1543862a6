"""The installed package tests itself.

``fastxent.test()`` runs the test-suite that ships inside the package
(``fastxent/tests``, the repository's ``tests/``) against whatever fastxent is
installed, with pytest. ``smoke()`` is a quick check that needs NumPy alone:
the compiled kernels load, agree with a plain NumPy computation and with the
NumPy backend, give the same bits for any thread count and instruction-set
cap, and never pick an instruction set the CPU lacks.

From a shell::

    python -m fastxent._selftest tests [pytest arguments]
    python -m fastxent._selftest smoke [--expect-installed] [--expect-simd baseline]
                                       [--expect-openmp none|present|bundled]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

TESTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests")


def test(*pytest_args: str) -> int:
    """Runs the installed test-suite (``fastxent/tests``) with pytest, against
    this installation of fastxent, and returns pytest's exit code (0: all
    passed). Extra arguments go to pytest, for instance
    ``fastxent.test("-x", "-k", "softmax")``. Needs the ``test`` extra:
    ``pip install "fastxent[test]"``."""
    try:
        import pytest
    except ImportError as exc:
        raise ImportError(
            "fastxent.test() needs pytest and the other test requirements: "
            'pip install "fastxent[test]"') from exc
    if not os.path.isfile(os.path.join(TESTS_DIR, "conftest.py")):
        raise RuntimeError(f"this installation of fastxent has no test-suite ({TESTS_DIR})")
    # -p no:cacheprovider: nothing is written into site-packages.
    return int(pytest.main([TESTS_DIR, "-ra", "-p", "no:cacheprovider", *pytest_args]))


test.__test__ = False  # type: ignore[attr-defined]  # not a test function, for pytest's collection


# --------------------------------------------------------------------------- smoke


def _log_softmax_numpy(x: Any) -> Any:
    """log_softmax over the last axis in float64, with NumPy only."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _site_packages() -> list[str]:
    import site
    import sysconfig

    dirs = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    return [os.path.realpath(d) for d in dirs]


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def smoke(*, expect_simd: str | None = None, expect_openmp: str | None = None,
          expect_installed: bool = False, verbose: bool = True) -> Any:
    """Runs the compiled kernels on a few problems and checks them against
    NumPy. Raises AssertionError on any disagreement; returns the config dict.

    expect_simd: the start of config()["simd"] required ("baseline", "avx2"...).
    expect_installed: fastxent and its extension must come from site-packages
    (an installed wheel, not a source tree).
    expect_openmp: "none" (a serial build), "present" (built with OpenMP),
    "bundled" (built with OpenMP, and the runtime loaded is the one inside this
    installation) or None (anything)."""
    if expect_openmp not in (None, "none", "present", "bundled"):
        raise ValueError("expect_openmp: expected None, 'none', 'present' or 'bundled', "
                         f"got {expect_openmp!r}")

    import numpy as np

    import fastxent
    from fastxent import _config

    say = print if verbose else (lambda *a, **k: None)
    cfg = _config.config()
    if verbose:
        fastxent.show_config()
    _check(_config._compiled is not None, "the compiled extension fastxent._kernels is not loaded")
    _check(cfg["backend"] == "compiled", f"backend is {cfg['backend']!r}, not 'compiled'")
    if expect_installed:
        where = [d for d in _site_packages() if _inside(fastxent.__file__, d)]
        _check(where, f"fastxent was imported from {fastxent.__file__}, not from site-packages")
        extension = str(getattr(_config._compiled, "__file__", ""))
        _check(_inside(extension, where[0]), f"the extension {extension} is not in {where[0]}")
        say(f"fastxent {fastxent.__version__} is installed in {where[0]}")
    if expect_simd is not None:
        _check(cfg["simd"].startswith(expect_simd),
               f"SIMD path {cfg['simd']!r}, expected {expect_simd!r}")
    if expect_openmp == "none":
        _check(cfg["openmp"] == "none", f"OpenMP runtime {cfg['openmp']!r}, expected none")
    elif expect_openmp in ("present", "bundled"):
        _check(cfg["openmp"] != "none", f"a serial build, expected an OpenMP runtime ({expect_openmp})")
    if expect_openmp == "bundled":
        from fastxent import _kernels

        library = _kernels.build_info()["openmp_library"]
        if library:  # known where dladdr exists (not on Windows)
            package_root = os.path.dirname(os.path.dirname(os.path.realpath(fastxent.__file__)))
            relative = os.path.relpath(os.path.realpath(library), package_root)
            _check(relative.startswith("fastxent"),
                   f"the OpenMP runtime in use, {library}, is not one bundled with fastxent")

    rng = np.random.default_rng(20240607)
    n_rows, n_classes = 1536, 97  # enough elements for several threads
    x64 = rng.standard_normal((n_rows, n_classes)) * 4
    labels = rng.integers(0, n_classes, n_rows)
    weight = rng.uniform(0.5, 2.0, n_classes)
    logp = _log_softmax_numpy(x64)
    p = np.exp(logp)
    onehot = np.eye(n_classes)[labels]
    expected_loss = -(logp[np.arange(n_rows), labels] * weight[labels]).sum() / weight[labels].sum()
    expected_grad = weight[labels][:, None] * (p - onehot) / weight[labels].sum()
    t = rng.uniform(size=(n_rows, n_classes))
    z = rng.standard_normal((n_rows, n_classes)) * 3
    expected_bce = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))

    isa_caps = ("baseline", "avx2", "avx512")
    previous_isa = cfg["simd"]
    checked = []
    try:
        for dtype, rtol in ((np.float64, 1e-10), (np.float32, 2e-5)):
            x = x64.astype(dtype)
            results = {}
            for cap in isa_caps:
                in_use = _config.set_isa(cap)
                # The dispatcher never chooses more than the cap allows (and,
                # run on an older CPU or under an emulator, more than it has).
                level = in_use.split(" ")[0]
                _check(level in isa_caps and isa_caps.index(level) <= isa_caps.index(cap),
                       f"cap {cap!r} selected {in_use!r}")
                for threads in (1, 2):
                    with fastxent.num_threads(threads):
                        loss, grad = fastxent.cross_entropy_with_grad(x, labels, weight=weight)
                        results[(in_use, threads)] = (loss, grad)
                        _check(loss.dtype == dtype and grad.dtype == dtype,
                               f"dtype {dtype.__name__} in, {loss.dtype}/{grad.dtype} out")
                        np.testing.assert_allclose(float(loss), expected_loss, rtol=rtol,
                                                   err_msg=f"cross_entropy loss, {in_use}")
                        np.testing.assert_allclose(grad, expected_grad, rtol=rtol,
                                                   atol=rtol * np.abs(expected_grad).max(),
                                                   err_msg=f"cross_entropy grad, {in_use}")
                        np.testing.assert_allclose(fastxent.log_softmax(x), logp, rtol=rtol,
                                                   atol=rtol * 10, err_msg=f"log_softmax, {in_use}")
                        np.testing.assert_allclose(fastxent.softmax(x), p, rtol=rtol,
                                                   atol=rtol * 1e-3, err_msg=f"softmax, {in_use}")
                        np.testing.assert_allclose(
                            fastxent.binary_cross_entropy_with_logits(z.astype(dtype), t.astype(dtype)),
                            expected_bce, rtol=rtol, err_msg=f"bce_with_logits, {in_use}")
                checked.append(in_use)
            # The thread count never changes a bit (API.md).
            for (in_use, threads), (loss, grad) in results.items():
                loss1, grad1 = results[(in_use, 1)]
                _check(loss.tobytes() == loss1.tobytes() and grad.tobytes() == grad1.tobytes(),
                       f"{in_use}: results differ between 1 and {threads} threads")
            # And the NumPy backend agrees.
            ref_loss, ref_grad = fastxent.reference.cross_entropy_with_grad(x, labels, weight=weight)
            np.testing.assert_allclose(float(loss1), float(ref_loss), rtol=rtol)
            np.testing.assert_allclose(grad1, ref_grad, rtol=rtol, atol=rtol * np.abs(ref_grad).max())
    finally:
        previous = previous_isa.split(" ")[0]
        _config.set_isa(previous if previous in isa_caps else "avx512")
    paths = sorted(set(checked))
    say(f"fastxent smoke test: OK (SIMD paths run: {', '.join(paths)}; "
        f"OpenMP: {cfg['openmp']}; threads 1 and 2 bit-identical)")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastxent._selftest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tests", help="run the installed test-suite with pytest",
                        add_help=False)
    smoke_parser = commands.add_parser("smoke", help="a quick check of the compiled kernels")
    smoke_parser.add_argument("--expect-simd", help="required start of the SIMD path")
    smoke_parser.add_argument("--expect-openmp", choices=("none", "present", "bundled"))
    smoke_parser.add_argument("--expect-installed", action="store_true",
                              help="require fastxent to come from site-packages")
    args, rest = parser.parse_known_args(argv)
    if args.command == "tests":
        return test(*rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    smoke(expect_simd=args.expect_simd, expect_openmp=args.expect_openmp,
          expect_installed=args.expect_installed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
