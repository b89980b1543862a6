#!/usr/bin/env bash
# Builds the extension with AddressSanitizer and UndefinedBehaviorSanitizer
# and runs the test-suite under them (without PyTorch, whose own library is
# not built for ASan). Any report fails the run.
#   bash tools/sanitize.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-sanitize
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet "Cython>=3.0.8" "numpy>=2.0" "setuptools>=77" pytest hypothesis scipy threadpoolctl

flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
rm -rf build src/fastxent/_kernels.c src/fastxent/_kernels*.so
FASTXENT_DEBUG=1 CFLAGS="$flags" LDFLAGS="$flags" python setup.py build_ext --inplace -q

# Python itself is not built with ASan: load the runtime first, and leave
# leak checking to tests/test_memory.py (CPython keeps objects alive at exit).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH=src
python -c "import fastxent; fastxent.show_config()"
status=0
# --capture=sys: a sanitizer's report, written to file descriptor 2, shows.
python -m pytest tests -q -p no:cacheprovider --capture=sys "$@" || status=$?
rm -rf build src/fastxent/_kernels.c src/fastxent/_kernels*.so
exit $status
