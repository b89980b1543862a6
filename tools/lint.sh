#!/usr/bin/env bash
# The linters, as CI and pre-commit run them (pip install ".[lint]" or the
# pinned versions in pyproject.toml's lint extra):
#   ruff check        the whole tree (rules in pyproject.toml)
#   ruff format       the files formatted so far (FORMATTED below)
#   clang-format      the C headers of the kernels (.clang-format)
#   bash tools/lint.sh          check;   bash tools/lint.sh --fix   rewrite
set -euo pipefail
cd "$(dirname "$0")/.."

# Python files under ruff format; the rest of the tree joins in one
# formatting commit of its own.
FORMATTED=(
    src/fastxent/_kinds.py
    src/fastxent/_losses.py
    tests/fastxent_testing.py
    tests/test_operations.py
)
HEADERS=(src/fastxent/*.h)

if [[ ${1:-} == --fix ]]; then
    ruff check --fix .
    ruff format "${FORMATTED[@]}"
    clang-format -i "${HEADERS[@]}"
else
    ruff check .
    ruff format --check "${FORMATTED[@]}"
    clang-format --dry-run -Werror "${HEADERS[@]}"
fi
echo "lint: clean"
