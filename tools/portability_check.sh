#!/usr/bin/env bash
# Portability proof for an installed fastxent (a repaired wheel): it imports
# and passes the smoke test (python -m fastxent._selftest smoke) on an x86-64
# CPU without AVX, AVX2 or AVX-512, emulated by Debian's qemu-user, so that a
# wheel built here cannot stop an older machine with an illegal instruction.
#
#   tools/portability_check.sh PYTHON [smoke options...]
#
# PYTHON is the interpreter of a virtual environment where fastxent is
# installed; smoke options (e.g. --expect-openmp bundled) go to the smoke test.
#
# CPU models (qemu -cpu):
#   Nehalem  SSE4.2 and POPCNT (x86-64-v2, the least NumPy 2.4 runs on), no
#            AVX: the kernels must choose their baseline path. A control
#            first checks that qemu traps an AVX2 instruction on it.
#   max      everything qemu emulates, AVX2 and FMA included, no AVX-512: the
#            kernels must choose their AVX2 path, and it must agree too.
# Installs qemu-user with apt-get when it is missing (as root); where it
# cannot, says so and exits 0 (SKIPPED).
set -euo pipefail

python=${1:?usage: tools/portability_check.sh PYTHON [smoke options...]}
shift
smoke_args=("$@")

say() { echo "portability: $*"; }

if [[ $(uname -m) != x86_64 ]]; then
    say "SKIPPED: the host is $(uname -m), not x86_64"
    exit 0
fi
if ! command -v qemu-x86_64 >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing qemu-user with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
    else
        say "SKIPPED: qemu-x86_64 is not installed and apt-get cannot install it here" \
            "(apt-get install qemu-user, as root)"
        exit 0
    fi
fi
qemu=(qemu-x86_64)
say "$(qemu-x86_64 --version | head -n 1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Control: the emulated Nehalem really lacks AVX2 and qemu traps it (SIGILL),
# so a kernel that used AVX2 there could not pass unnoticed.
if command -v cc >/dev/null; then
    cat >"$work/avx2.c" <<'EOF'
#include <immintrin.h>
#include <stdio.h>
__attribute__((target("avx2"))) static int twice(int a) {
    volatile __m256i v = _mm256_set1_epi32(a);
    return _mm256_extract_epi32(_mm256_add_epi32(v, v), 3);
}
int main(int argc, char **argv) { (void)argv; printf("%d\n", twice(argc)); return 0; }
EOF
    cc -O1 -o "$work/avx2" "$work/avx2.c"
    # (in a child shell, whose report of the signal goes nowhere)
    status=$(bash -c '"$@" >/dev/null 2>&1; echo $?' _ "${qemu[@]}" -cpu Nehalem "$work/avx2" 2>/dev/null)
    if [[ $status != 132 ]]; then
        say "FAILED: the control AVX2 program exited $status under -cpu Nehalem, not 132 (SIGILL)"
        exit 1
    fi
    say "control: an AVX2 instruction under -cpu Nehalem stops with SIGILL, as on such a CPU"
fi

run() {  # run CPU_MODEL EXPECTED_SIMD [OPENBLAS_CORETYPE]
    local model=$1 simd=$2 coretype=${3:-}
    # OPENBLAS_CORETYPE, where the machine sets it, names the host's CPU
    # (Haswell, say): NumPy's OpenBLAS would run that CPU's kernels on the
    # emulated one and stop with SIGILL before fastxent is imported. It names
    # the emulated CPU instead, for these runs only.
    local env=()
    if [[ -n ${OPENBLAS_CORETYPE:-} && -n $coretype ]]; then
        env=(env "OPENBLAS_CORETYPE=$coretype")
    fi
    say "---- qemu-x86_64 -cpu $model (expected SIMD path: $simd) ----"
    (cd "$work" && "${env[@]}" "${qemu[@]}" -cpu "$model" "$python" -c \
        "import sys, fastxent; print('fastxent', fastxent.__version__, 'from', fastxent.__file__)")
    (cd "$work" && "${env[@]}" "${qemu[@]}" -cpu "$model" "$python" -m fastxent._selftest smoke \
        --expect-simd "$simd" "${smoke_args[@]}")
}

run Nehalem baseline Nehalem
run max avx2
say "OK: the installed fastxent runs on an x86-64 without AVX (baseline path) and with AVX2"
