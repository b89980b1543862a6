#!/usr/bin/env bash
# cibuildwheel's before-all on macOS ([tool.cibuildwheel.macos] in
# pyproject.toml): an OpenMP runtime for Apple clang, in
# $FASTXENT_OPENMP_PREFIX (default ~/.fastxent-openmp: include/omp.h,
# lib/libomp.dylib), where the CPPFLAGS/LDFLAGS of pyproject.toml look.
#
# Not Homebrew's libomp: a bottle is built for the runner's own macOS, and
# delocate refuses to bundle a library that needs a newer macOS than the
# wheel's tag ("Library dependencies do not satisfy target MacOS version").
# conda-forge's llvm-openmp is built for old targets (osx-64: 10.13, osx-arm64:
# 11.0), the MACOSX_DEPLOYMENT_TARGET values pyproject.toml sets; delocate
# checks the result when it copies libomp.dylib into the wheel.
#
# The target architecture is CIBW_ARCHS_MACOS or CIBW_ARCHS (one of x86_64,
# arm64; the workflow builds one per runner), else the runner's own.
set -euo pipefail

version=${LLVM_OPENMP_VERSION:-20.1.8}
prefix=${FASTXENT_OPENMP_PREFIX:-$HOME/.fastxent-openmp}
arch=${CIBW_ARCHS_MACOS:-${CIBW_ARCHS:-$(uname -m)}}
case $arch in
    x86_64) platform=osx-64 ;;
    arm64) platform=osx-arm64 ;;
    *) echo "cibw_macos_openmp.sh: one architecture per build (x86_64 or arm64), not '$arch'" >&2
       exit 1 ;;
esac
case $(uname -m) in
    arm64) host=osx-arm64 ;;
    *) host=osx-64 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fastxent: llvm-openmp $version for $platform from conda-forge into $prefix"
curl -fsSL --retry 3 "https://micro.mamba.pm/api/micromamba/$host/latest" | tar -xj -C "$work" bin/micromamba
rm -rf "$prefix"
"$work/bin/micromamba" create --yes --quiet --root-prefix "$work/root" --prefix "$prefix" \
    --platform "$platform" --override-channels --channel conda-forge "llvm-openmp==$version"

test -f "$prefix/include/omp.h"
test -f "$prefix/lib/libomp.dylib"
lipo -archs "$prefix/lib/libomp.dylib" | grep -qw "$arch" \
    || { echo "libomp.dylib is not built for $arch" >&2; exit 1; }
echo "fastxent: $(otool -D "$prefix/lib/libomp.dylib" | tail -n 1) ($arch); its minimum macOS:"
otool -l "$prefix/lib/libomp.dylib" | grep -A4 -E 'LC_BUILD_VERSION|LC_VERSION_MIN_MACOSX' \
    | grep -E 'minos|version' || true
