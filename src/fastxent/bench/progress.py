"""A progress bar on stderr: redrawn with \\r on a terminal, elsewhere a plain
line per block (a log stays readable). Short enough not to need a library."""

import sys
from typing import TextIO


class Progress:
    WIDTH = 24

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.index, self.rounds, self._width = total, 0, 1, 0
        self.label = ""

    def block(self, label: str) -> None:
        self.index += 1
        self.label = label
        if self.tty:
            self._draw(0.0, "checking")
        else:
            print(f"bench: [{self.index}/{self.total}] {label}", file=self.stream, flush=True)

    def start(self, rounds: int) -> None:
        self.rounds = rounds
        if self.tty:
            self._draw(0.0, f"round 0/{rounds}")

    def round(self, r: int) -> None:
        if self.tty:
            self._draw(r / self.rounds, f"round {r}/{self.rounds}")

    def _draw(self, fraction: float, status: str) -> None:
        done = (self.index - 1 + fraction) / max(self.total, 1)
        filled = int(done * self.WIDTH + 0.5)
        line = (f"bench [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{self.index}/{self.total} {self.label}: {status}")
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
