"""python -m fastxent info | bench [options] | score PRED TARGET [options]"""

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(prog="python -m fastxent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the configuration (version, backend, OpenMP, SIMD, threads)")
    bench = commands.add_parser("bench", help="time fastxent against NumPy, its peers and the memory floor")
    from .bench import add_arguments, run

    add_arguments(bench)
    from . import _score

    _score.add_arguments(commands.add_parser("score", help="the loss of prediction files, "
                                             "chunk by chunk (larger than memory)"))
    args = parser.parse_args(argv)
    if args.command == "score":
        return _score.run(args)
    if args.command == "info":
        from ._config import show_config

        show_config()
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
