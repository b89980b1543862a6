"""Which fastxent the tests run against, and what its wheel carries.

Run from a source checkout these tests check little. Set the environment of a
run against an installed wheel (.ci/run and cibuildwheel do) and they prove it:

FASTXENT_EXPECT_INSTALLED=1
    fastxent and its compiled extension are imported from site-packages (not
    from a source tree, nor through an editable install), the compiled
    backend is in use, and the tests themselves are the ones installed with it.
FASTXENT_EXPECT_OPENMP=none | bundled
    none: a serial build (show_config() says OpenMP: none). bundled: the
    OpenMP runtime the kernels call is the copy inside the wheel
    (fastxent.libs/ by auditwheel or delvewheel, fastxent/.dylibs/ by
    delocate), and the wheel's metadata carries that runtime's licence.
"""

import glob
import importlib.metadata
import os
import site
import sys
import sysconfig
from pathlib import Path

import pytest

import fastxent
from fastxent import _config

EXPECT_INSTALLED = os.environ.get("FASTXENT_EXPECT_INSTALLED", "") == "1"
EXPECT_OPENMP = os.environ.get("FASTXENT_EXPECT_OPENMP", "")

installed_only = pytest.mark.skipif(
    not EXPECT_INSTALLED, reason="FASTXENT_EXPECT_INSTALLED=1 is not set: "
                                 "this run may test a source tree")

PACKAGE_DIR = Path(fastxent.__file__).resolve().parent

# The licence file (LICENSES/ in the repository) of each platform's bundled runtime.
RUNTIME_LICENCE = {"linux": "libgomp", "darwin": "libomp", "win32": "vcomp140"}


def site_packages():
    dirs = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    return [Path(d).resolve() for d in dirs]


def inside(path, directory):
    try:
        Path(path).resolve().relative_to(directory)
        return True
    except ValueError:
        return False


def installed_site_dir():
    """The site-packages directory holding fastxent (None if it is elsewhere)."""
    return next((d for d in site_packages() if inside(PACKAGE_DIR, d)), None)


def test_the_extension_lies_beside_the_package():
    if _config._compiled is None:
        pytest.skip("the compiled extension is not built")
    assert Path(_config._compiled.__file__).resolve().parent == PACKAGE_DIR


@installed_only
def test_fastxent_is_imported_from_site_packages():
    assert installed_site_dir() is not None, (
        f"fastxent was imported from {PACKAGE_DIR}, outside {site_packages()}")
    # An editable install or a PYTHONPATH=src run would import the source tree.
    assert not (PACKAGE_DIR.parent.name == "src" and (PACKAGE_DIR.parents[1] / "setup.py").exists())
    assert "__editable__" not in str(getattr(fastxent, "__spec__", "")), fastxent.__spec__


@installed_only
def test_the_compiled_extension_is_installed_and_in_use():
    assert _config._compiled is not None, "the compiled extension did not import"
    assert inside(_config._compiled.__file__, installed_site_dir())
    assert fastxent.get_backend() == "compiled"
    assert _config.config()["compiled"] is True


@installed_only
def test_these_tests_are_the_installed_ones():
    # fastxent.test() / pytest --pyargs fastxent: the suite shipped in the wheel.
    assert Path(__file__).resolve().parent == PACKAGE_DIR / "tests"
    from fastxent._selftest import TESTS_DIR

    assert Path(TESTS_DIR).resolve() == Path(__file__).resolve().parent


@installed_only
def test_the_version_has_one_source():
    assert importlib.metadata.version("fastxent") == fastxent.__version__


@pytest.mark.skipif(EXPECT_OPENMP != "none", reason="FASTXENT_EXPECT_OPENMP=none is not set")
def test_a_serial_build_reports_no_openmp(capsys):
    assert _config._compiled is not None
    assert _config.config()["openmp"] == "none"
    fastxent.show_config()
    assert "   openmp: none" in capsys.readouterr().out.splitlines()


@pytest.mark.skipif(not os.environ.get("FASTXENT_EXPECT_ISA"),
                    reason="FASTXENT_EXPECT_ISA is not set")
def test_the_kernels_run_the_instruction_set_expected():
    # CI runs the whole suite once with FASTXENT_ISA=baseline: this proves it did.
    assert _config.config()["simd"].startswith(os.environ["FASTXENT_EXPECT_ISA"])


def loaded_windows_module(name):
    """The path of the DLL `name` as loaded into this process, or None."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.GetModuleHandleW.restype = wintypes.HMODULE
    kernel32.GetModuleHandleW.argtypes = [wintypes.LPCWSTR]
    kernel32.GetModuleFileNameW.argtypes = [wintypes.HMODULE, wintypes.LPWSTR, wintypes.DWORD]
    handle = kernel32.GetModuleHandleW(name)
    if not handle:
        return None
    buffer = ctypes.create_unicode_buffer(32768)
    kernel32.GetModuleFileNameW(handle, buffer, len(buffer))
    return buffer.value


@installed_only
@pytest.mark.skipif(EXPECT_OPENMP != "bundled", reason="FASTXENT_EXPECT_OPENMP=bundled is not set")
def test_the_openmp_runtime_in_use_is_the_bundled_one():
    site_dir = installed_site_dir()
    assert _config.config()["openmp"] != "none", "a serial build: no OpenMP runtime"
    library = _config._compiled.build_info()["openmp_library"]
    if sys.platform == "win32":
        # delvewheel copies vcomp140.dll to fastxent.libs/ under a mangled name.
        bundled = glob.glob(str(site_dir / "fastxent.libs" / "vcomp140*.dll"))
        assert bundled, f"no vcomp140*.dll in {site_dir / 'fastxent.libs'}"
        loaded = [loaded_windows_module(os.path.basename(b)) for b in bundled]
        assert any(loaded), f"none of {bundled} is loaded"
        return
    assert library, "the extension cannot tell which OpenMP runtime it calls"
    relative = Path(library).resolve().relative_to(site_dir)  # ValueError: not in the wheel
    # auditwheel: fastxent.libs/libgomp-<hash>.so.1; delocate: fastxent/.dylibs/libomp.dylib
    assert relative.parts[0] in ("fastxent.libs", "fastxent"), relative


@installed_only
@pytest.mark.skipif(EXPECT_OPENMP != "bundled", reason="FASTXENT_EXPECT_OPENMP=bundled is not set")
def test_the_wheel_carries_the_bundled_runtime_licence():
    files = [str(f) for f in importlib.metadata.distribution("fastxent").files or []]
    licences = [f for f in files if ".dist-info/licenses/" in f.replace("\\", "/")]
    runtime = RUNTIME_LICENCE.get(sys.platform)
    if runtime is None:
        pytest.skip(f"no bundled runtime known for {sys.platform}")
    assert any(Path(f).name.startswith(runtime) for f in licences), licences
