"""The README's performance table, made from the JSON of a bench run.

    python -m fastxent bench --full --json bench.json --plot docs/benchmark.png
    python tools/bench_table.py bench.json              # prints the table
    python tools/bench_table.py bench.json --readme README.md   # replaces it there

In README.md, the table sits between the lines <!-- bench-table --> and
<!-- /bench-table -->, preceded by a line saying what produced it (versions,
CPUs, the load average the run printed).
"""

import argparse
import json
import re
import sys

from fastxent.bench.report import markdown_caption, markdown_table

START, END = "<!-- bench-table -->", "<!-- /bench-table -->"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="the file written by python -m fastxent bench --json")
    parser.add_argument("--readme", help="replace the table between the markers in this file")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        data = json.load(f)
    block = f"{START}\n{markdown_caption(data)}\n\n{markdown_table(data)}{END}"
    if args.readme is None:
        print(block)
        return 0
    with open(args.readme) as f:
        text = f.read()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        print(f"bench_table: {args.readme}: expected one {START} ... {END} block", file=sys.stderr)
        return 2
    with open(args.readme, "w") as f:
        f.write(pattern.sub(lambda _: block, text))
    print(f"bench_table: the table in {args.readme} replaced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
