#!/usr/bin/env bash
# Builds the extension with AddressSanitizer and UndefinedBehaviorSanitizer
# and runs the test-suite under them. Any report fails the run.
#   bash tools/sanitize.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-sanitize
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet "Cython>=3.0.8" "numpy>=2.0" "setuptools>=77" pytest hypothesis scipy threadpoolctl
# PyTorch for the comparison tests, as .ci/run: only a CPU build found without the index.
torch_dir=$(mktemp -d)
if python -m pip download --quiet --no-deps --no-index --dest "$torch_dir" "torch==2.13.0" 2>/dev/null; then
    python -m pip install --quiet "$torch_dir"/torch-*.whl
fi
rm -rf "$torch_dir"

flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
rm -rf build src/fastxent/_kernels.c src/fastxent/_kernels*.so
FASTXENT_DEBUG=1 CFLAGS="$flags" LDFLAGS="$flags" python setup.py build_ext --inplace -q

# Python itself is not built with ASan: load the runtime first, and leave
# leak checking to tests/test_memory.py (CPython keeps objects alive at exit).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
# allocator_may_return_null: an impossible allocation is NumPy's MemoryError,
# as without ASan, not an abort.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH=src
python -c "import fastxent; fastxent.show_config()"
status=0
# --capture=sys: a sanitizer's report, written to file descriptor 2, shows.
# Left out: the RSS test (ASan's quarantine keeps freed memory resident) and
# the children that run under a memory limit (terabyte-sized arrays, a file
# larger than the memory allowed: ASan's shadow memory cannot be mapped there).
risky=tests/test_bad_input.py::test_risky_in_subprocess
python -m pytest tests -q -p no:cacheprovider --capture=sys \
    --deselect tests/test_memory.py::test_100000_calls_leave_rss_and_tracemalloc_flat \
    --deselect "$risky[compiled-huge-broadcast-views]" --deselect "$risky[numpy-huge-broadcast-views]" \
    --deselect "$risky[compiled-zero-size-with-huge-dimensions]" \
    --deselect "$risky[numpy-zero-size-with-huge-dimensions]" \
    --deselect tests/test_score.py::test_score_a_file_larger_than_the_memory_allowed \
    "$@" || status=$?
rm -rf build src/fastxent/_kernels.c src/fastxent/_kernels*.so
exit $status
