"""Build of the compiled kernels (fastxent._kernels) and the bench's floors
(fastxent.bench._floors).

Switches (environment variables read at build time):
  FASTXENT_DISABLE_OPENMP=1  build without OpenMP (serial kernels)
  FASTXENT_NATIVE=1          add -march=native (a local build only: never ship it)
  FASTXENT_DEBUG=1           -O0 -g, for debuggers and sanitizers
"""

import os
import shlex
import shutil
import sys
import tempfile
import textwrap

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+ : n)
        n += 1;
        printf("%d %d\\n", n, omp_get_max_threads());
        return 0;
    }
    """
)


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _openmp_flag_candidates(compiler_type):
    """(compile args, link args) to try, in order, for this compiler."""
    if compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp driver flag; it works with libomp installed.
        return [(["-fopenmp"], ["-fopenmp"]), (["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    return [(["-fopenmp"], ["-fopenmp"])]


def _compiles_and_links(compiler, source, compile_args, link_args):
    tmp = tempfile.mkdtemp(prefix="fastxent-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
        # LDFLAGS too: setuptools adds them to extensions, not to executables.
        ldflags = shlex.split(os.environ.get("LDFLAGS", ""))
        compiler.link_executable(objects, "probe", output_dir=tmp,
                                 extra_postargs=link_args + ldflags)
        return True
    except Exception:  # any compiler or linker failure means: not available
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        compile_args, link_args = self._optimisation_flags(ctype)
        if ctype != "msvc" and not _flag("FASTXENT_DEBUG"):
            compile_args += self._scheduling_flags()
        openmp = self._find_openmp(ctype)
        if openmp:
            compile_args += openmp[0]
            link_args += openmp[1]
        elif ctype != "msvc":
            # Still honour the `omp simd` loops of the row sweeps.
            compile_args.append("-fopenmp-simd")
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
            if sys.platform.startswith("linux"):
                ext.libraries.append("dl")  # dladdr, for show_config on old glibc
        super().build_extensions()

    @staticmethod
    def _optimisation_flags(ctype):
        if ctype == "msvc":
            return ["/O2", "/fp:precise"], []
        if _flag("FASTXENT_DEBUG"):
            return ["-O0", "-g", "-fno-omit-frame-pointer"], []
        # Portable by default: the row sweeps pick AVX2 / AVX-512 at run time.
        # Never -ffast-math: linking it would switch the whole process to
        # flush-to-zero, and it changes results.
        flags = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
        if _flag("FASTXENT_NATIVE"):
            flags.append("-march=native")
        return flags, []

    def _scheduling_flags(self):
        """GCC's instruction scheduling before register allocation, where the
        compiler takes it without a warning: it interleaves the two exp chains
        of the row sweeps (_rows_impl.h), which are bound by latency
        (docs/benchmarks.md). GCC leaves it off on x86 by default."""
        flags = ["-fschedule-insns", "-fsched-pressure"]
        probe = "int main(void) { return 0; }\n"
        if _compiles_and_links(self.compiler, probe, flags + ["-Werror"], []):
            return flags
        return []

    def _find_openmp(self, ctype):
        if _flag("FASTXENT_DISABLE_OPENMP"):
            print("fastxent: FASTXENT_DISABLE_OPENMP is set: building serial kernels")
            return None
        for compile_args, link_args in _openmp_flag_candidates(ctype):
            if _compiles_and_links(self.compiler, OPENMP_PROBE, compile_args, link_args):
                print(f"fastxent: building with OpenMP ({' '.join(compile_args)})")
                return compile_args, link_args
        print(
            "\n" + "*" * 72 + "\n"
            "WARNING: fastxent: this compiler has no usable OpenMP; the kernels\n"
            "will run on one thread. (On macOS: install libomp.)\n" + "*" * 72 + "\n",
            file=sys.stderr,
        )
        return None


extensions = [
    Extension(
        "fastxent._kernels",
        sources=["src/fastxent/_kernels.pyx"],
        depends=[f"src/fastxent/{name}" for name in (
            "_rows.h", "_fx_platform.h", "_fx_pipeline.h", "_fx_rows.h", "_fx_math.h",
            "_rows_impl.h", "_fx_dispatch.h", "_fx_short16.h")],
        include_dirs=["src/fastxent"],
    ),
    # Bench-only: the memory floors of `python -m fastxent bench`.
    Extension("fastxent.bench._floors", sources=["src/fastxent/bench/_floors.pyx"]),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
