"""python -m fastxent score PRED TARGET: the loss of prediction files, chunk by chunk.

PRED holds logits or probabilities, TARGET the class labels (or, for logits,
class probabilities shaped like PRED). Files: .npy (read in chunks of rows, so
files larger than memory work), .npz (PATH.npz, or PATH.npz:NAME for one of
several arrays; loaded whole), Zarr (a directory PATH.zarr, when zarr is
installed). Prints the mean loss (cross-entropy of logits, or scikit-learn's
log loss of probabilities), its sum and count, the perplexity and the
accuracy; --json prints them as one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import mmap
import os
import sys
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from . import stream
from ._validate import IGNORE_INDEX_DEFAULT

_CHUNK_BYTES = 16 << 20  # default chunk: about 16 MB of predictions

Source: TypeAlias = "NpySource | ArraySource"


# --------------------------------------------------------------------------- sources


class NpySource:
    """An .npy file read a range of rows at a time (into a reusable buffer):
    never mapped whole, so its size is bounded by the disk, not by memory or
    address space. Pickles as its path (Dask workers open it themselves)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            header: tuple[tuple[int, ...], bool, np.dtype[Any]] = reader(f)
            self.shape, self.fortran_order, self.dtype = header
            self.offset = f.tell()
        if self.dtype.hasobject:
            raise TypeError(f"{self.path}: holds Python objects, not numbers")
        if not self.shape:
            raise ValueError(f"{self.path}: holds a 0-d array; expected rows")
        self.ndim = len(self.shape)
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        size, expected = os.path.getsize(self.path), self.offset + self.shape[0] * self.row_bytes
        if size < expected:
            raise ValueError(f"{self.path}: truncated ({size} bytes; its header says "
                             f"{self.shape[0]} rows, {expected} bytes)")

    def rows(self, start: int, stop: int, buffer: NDArray[np.uint8] | None = None) -> NDArray[Any]:
        """Rows [start, stop) as an array (in `buffer` when it is big enough)."""
        n = stop - start
        if self.fortran_order:  # rows are not contiguous in the file: map it
            whole = np.load(self.path, mmap_mode="r")
            return np.ascontiguousarray(whole[start:stop])
        shape = (n,) + tuple(self.shape[1:])
        if buffer is not None and buffer.nbytes >= n * self.row_bytes:
            out = buffer[:n * self.row_bytes].view(self.dtype).reshape(shape)
        else:
            out = np.empty(shape, self.dtype)
        with open(self.path, "rb") as f:  # per chunk: nothing left open, picklable
            f.seek(self.offset + start * self.row_bytes)
            got = f.readinto(out.reshape(-1).data.cast("B"))
        if got != n * self.row_bytes:
            raise ValueError(f"{self.path}: truncated ({got} of {n * self.row_bytes} bytes "
                             f"at row {start})")
        return out

    def chunk(self, start: int, stop: int) -> NDArray[Any]:
        """Rows [start, stop) as a read-only array over a mapping of just their
        bytes, its pages mapped in now (read from the disk if they must be):
        the loss kernels then read the page cache itself, with no copy. The
        mapping goes when the array does. Fortran-ordered files: `rows`."""
        if self.fortran_order:
            return self.rows(start, stop)
        begin = self.offset + start * self.row_bytes
        aligned = begin - begin % mmap.ALLOCATIONGRANULARITY  # an mmap offset must be
        length = begin - aligned + (stop - start) * self.row_bytes
        shape = (stop - start,) + tuple(self.shape[1:])
        if length == 0:
            return np.empty(shape, self.dtype)
        with open(self.path, "rb") as f:
            if os.fstat(f.fileno()).st_size < aligned + length:  # shrunk since it was opened
                raise ValueError(f"{self.path}: truncated (it ends before row {stop})")
            window = mmap.mmap(f.fileno(), length, offset=aligned, access=mmap.ACCESS_READ)
        _map_in(window)
        rows: NDArray[Any] = np.frombuffer(window, self.dtype, math.prod(shape),
                                           begin - aligned).reshape(shape)
        return rows

    def __getitem__(self, key: Any) -> NDArray[Any]:  # for dask.array.from_array
        key = key if isinstance(key, tuple) else (key,)
        first = key[0] if key else slice(None)
        start, stop, step = first.indices(self.shape[0])
        block = self.rows(start, stop)
        return block[(slice(None, None, step),) + tuple(key[1:])]


# MADV_POPULATE_READ (Linux 5.14): maps a range's pages in one call, reading
# them from the disk if needed; cheaper than a page fault per 64 KB.
_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22 if sys.platform.startswith("linux")
                         else None)


def _map_in(window: mmap.mmap) -> None:
    """Maps in a window's pages now (in the read-ahead thread), so that the
    kernels that read them next find them mapped and in memory."""
    if _POPULATE_READ is not None:
        try:
            window.madvise(_POPULATE_READ)
            return
        except OSError:  # an older kernel: start reading it, the kernels fault it in
            pass
    if hasattr(mmap, "MADV_WILLNEED"):
        window.madvise(mmap.MADV_WILLNEED)


class ArraySource:
    """An array already in memory (or a Zarr array), rows by slicing."""

    def __init__(self, array: Any, name: str) -> None:
        self.array, self.path = array, name
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), array.ndim
        if not self.shape:
            raise ValueError(f"{name}: holds a 0-d array; expected rows")

    def rows(self, start: int, stop: int, buffer: NDArray[np.uint8] | None = None) -> NDArray[Any]:
        return np.asarray(self.array[start:stop])

    chunk = rows  # no mapping to make: rows [start, stop) for the scoring loop

    def __getitem__(self, key: Any) -> NDArray[Any]:
        return np.asarray(self.array[key])


def open_source(spec: str) -> Source:
    """A source of rows for a file name (see the module's docstring)."""
    path, _, member = spec.partition(".npz:")
    if member:
        path += ".npz"
    if path.endswith(".npz"):
        with np.load(path) as archive:
            names = archive.files
            if not member:
                if len(names) != 1:
                    raise ValueError(f"{path}: holds {len(names)} arrays {names}; "
                                     f"name one as {path}:NAME")
                member = names[0]
            if member not in names:
                raise ValueError(f"{path}: has no array {member!r} (it has {names})")
            return ArraySource(archive[member], f"{path}:{member}")
    if os.path.isdir(path) or path.endswith(".zarr"):
        try:
            import zarr
        except ImportError:
            raise ValueError(f"{path}: reading Zarr needs the zarr package "
                             "(pip install zarr)") from None
        return ArraySource(zarr.open(path, mode="r"), path)
    if not path.endswith(".npy"):
        raise ValueError(f"{path}: expected a .npy, .npz or .zarr file")
    return NpySource(path)


# --------------------------------------------------------------------------- scoring


def _looks_like_probabilities(block: NDArray[Any], axis: int) -> bool:
    """Non-negative rows summing to one."""
    if block.size == 0 or block.dtype.kind != "f":
        return False
    if not (np.min(block) >= 0 and np.max(block) <= 1):
        return False
    return bool(np.allclose(np.sum(block, axis=axis, dtype=np.float64), 1.0, atol=1e-3))


class Progress:
    """A progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, enabled: bool, stream_: IO[str] | None = None) -> None:
        self.total, self.enabled = total, enabled
        self.out = stream_ or sys.stderr
        self.started = self.last = time.perf_counter()

    def update(self, done: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        fraction = done / self.total if self.total else 1.0
        bar = "#" * int(30 * fraction)
        self.out.write(f"\rscore {bar:<30} {100 * fraction:5.1f}% {done:,}/{self.total:,} rows "
                       f"{now - self.started:6.1f} s")
        self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(self.total, force=True)
            self.out.write("\n")
            self.out.flush()


def _ranges(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    return [(start, min(n_rows, start + chunk_rows)) for start in range(0, n_rows, chunk_rows)]


def _read_ahead(pred: Source, target: Source, chunk_rows: int
                ) -> Generator[tuple[int, NDArray[Any], NDArray[Any]], None, None]:
    """(stop, predictions, targets) of every chunk in order. A thread reads the
    next chunk (maps its pages in, from the page cache or the disk) while the
    caller scores this one: the reads and the kernels release the GIL, so they
    overlap. At most three chunks are mapped at a time (the one scored, the one
    read, one the caller may still hold), whatever the file's size."""
    ranges = _ranges(pred.shape[0], chunk_rows)

    def read(k: int) -> tuple[NDArray[Any], NDArray[Any]]:
        start, stop = ranges[k]
        return pred.chunk(start, stop), target.chunk(start, stop)

    with ThreadPoolExecutor(1, thread_name_prefix="fastxent-score-read") as reader:
        ahead = reader.submit(read, 0) if ranges else None
        for k, (_, stop) in enumerate(ranges):
            assert ahead is not None
            pred_rows, target_rows = ahead.result()
            ahead = reader.submit(read, k + 1) if k + 1 < len(ranges) else None
            yield stop, pred_rows, target_rows


def _score_local(pred: Source, target: Source, options: dict[str, Any], chunk_rows: int,
                 progress: Progress) -> stream.Accumulator:
    acc = stream.Accumulator(**options)
    with contextlib.closing(_read_ahead(pred, target, chunk_rows)) as chunks:  # on error too
        for stop, pred_rows, target_rows in chunks:
            acc.update(pred_rows, target_rows)
            progress.update(stop)
    return acc


def _chunk_parts_block(pred: Source, target: Source, start: int, stop: int,
                       options: dict[str, Any]) -> stream.ChunkParts:
    origin = (start,) + (0,) * (len(target.shape) - 1)
    return stream.chunk_parts(pred.rows(start, stop), target.rows(start, stop), origin=origin,
                              **options)


def _score_dask(pred: Source, target: Source, options: dict[str, Any], chunk_rows: int,
                progress: Progress, address: str) -> stream.Accumulator:
    """The chunks' parts computed on a Dask cluster, added here in the chunks'
    order: the same result, to the bit, as the local run."""
    from dask.distributed import Client, as_completed

    acc = stream.Accumulator(**options)
    with Client(address) as client:
        ranges = _ranges(pred.shape[0], chunk_rows)
        futures = [client.submit(_chunk_parts_block, pred, target, start, stop, options,
                                 pure=False) for start, stop in ranges]
        index = {f.key: i for i, f in enumerate(futures)}
        parts: list[Any] = [None] * len(futures)  # ChunkParts, in the chunks' order
        done_rows = 0
        for future in as_completed(futures):
            i = index[future.key]
            parts[i] = future.result()
            done_rows += ranges[i][1] - ranges[i][0]
            progress.update(done_rows)
        for p in parts:
            acc.add(p)
    return acc


def score(pred_spec: str, target_spec: str, *, from_logits: bool | None = None, axis: int = -1,
          ignore_index: int | None = None, chunk_rows: int | None = None,
          scheduler: str | None = None, progress: bool = False,
          accuracy: bool = True) -> dict[str, Any]:
    """The scores of a predictions file against a targets file: what
    ``python -m fastxent score`` computes and prints.

    Parameters
    ----------
    pred_spec : str
        The predictions: ``PATH.npy`` (read in chunks of rows, never whole),
        ``PATH.npz`` or ``PATH.npz:NAME`` (loaded whole), or a Zarr directory
        (``PATH.zarr``, where zarr is installed).
    target_spec : str
        The targets, one per row of the predictions: class labels, or (for
        logits) class probabilities shaped like the predictions.
    from_logits : bool, optional
        True: logits (the loss is the cross-entropy); False: probabilities
        (scikit-learn's log loss); None: detected from the first 1,024 rows
        (probabilities if they are non-negative and each row sums to 1).
    axis : int, default -1
        The class axis of the predictions; not the first axis (the rows).
    ignore_index : int, optional
        A label whose rows count for nothing (default -100).
    chunk_rows : int, optional
        Rows read at a time (default: about 16 MB of predictions).
    scheduler : str, optional
        The address of a Dask scheduler (``tcp://host:8786``): the chunks are
        scored on its workers, which must be able to read the files, and
        added here in order (the local run's bits).
    progress : bool, default False
        Draw a progress bar on stderr.
    accuracy : bool, default True
        Also compute the accuracy (an argmax of every row).

    Returns
    -------
    dict
        ``predictions``, ``targets`` (the paths), ``shape``, ``dtype``,
        ``kind`` ("logits" or "probs", "(detected)" when not given), ``loss``
        (the mean), ``sum``, ``count`` (the mean's denominator), ``rows``,
        ``accuracy`` (None when not computed), ``perplexity`` (``exp(loss)``),
        ``chunk_rows`` and ``seconds``: what ``--json`` prints.

    Raises
    ------
    OSError
        A file that cannot be read.
    ValueError
        Files of different numbers of rows, a class axis 0, a bad
        `chunk_rows`, an unknown file type or a truncated file; the loss's
        errors (a probability outside [0, 1]).
    TypeError, IndexError
        The loss's errors: non-numeric data, a label out of range (positions
        counted over the whole file).

    See Also
    --------
    fastxent.stream.Accumulator : The chunked scoring it runs.

    Notes
    -----
    Locally, a thread reads the next chunk while the kernels score the current
    one; a ``.npy`` chunk is mapped and its pages mapped in at once (read from
    the disk if they must be), and the kernels read it where it lies. At most
    three chunks per file are held at a time.
    """
    started = time.perf_counter()
    pred, target = open_source(pred_spec), open_source(target_spec)
    if pred.shape[0] != target.shape[0]:
        raise ValueError(f"{target.path}: has {target.shape[0]} rows, {pred.path} has "
                         f"{pred.shape[0]}")
    if pred.ndim >= 2 and axis % pred.ndim == 0:
        raise ValueError(f"--axis {axis}: the files are read in chunks of rows (their first "
                         "axis), which cannot be the class axis")
    if chunk_rows is None:
        row_bytes = math.prod(pred.shape[1:]) * pred.dtype.itemsize
        chunk_rows = max(1, _CHUNK_BYTES // max(1, row_bytes))
    if chunk_rows < 1:
        raise ValueError(f"--chunk-rows: expected a positive number, got {chunk_rows}")
    kind = "logits" if from_logits else "probs"
    if from_logits is None:
        first = pred.rows(0, min(pred.shape[0], 1024))
        from_logits = not _looks_like_probabilities(first, axis)
        kind = ("logits" if from_logits else "probs") + " (detected)"
    if ignore_index is None:  # none given: probability targets are fine
        ignore_index = IGNORE_INDEX_DEFAULT
    options = dict(from_logits=from_logits, ignore_index=ignore_index, axis=axis,
                   accuracy=accuracy)
    bar = Progress(pred.shape[0], progress)
    if scheduler:
        acc = _score_dask(pred, target, options, chunk_rows, bar, scheduler)
    else:
        acc = _score_local(pred, target, options, chunk_rows, bar)
    bar.close()
    result = acc.result()
    return {
        "predictions": pred.path,
        "targets": target.path,
        "shape": list(pred.shape),
        "dtype": str(pred.dtype),
        "kind": kind,
        "loss": result.mean,
        "sum": result.sum,
        "count": result.count,
        "rows": result.rows,
        "accuracy": result.accuracy,
        "perplexity": result.perplexity,
        "chunk_rows": chunk_rows,
        "seconds": time.perf_counter() - started,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predictions: .npy, .npz[:NAME] or .zarr")
    parser.add_argument("target", metavar="TARGET", help="class labels (or probabilities), "
                        "one per row of PRED")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--from-logits", dest="from_logits", action="store_true", default=None,
                      help="PRED holds logits (the loss: cross-entropy)")
    kind.add_argument("--probs", dest="from_logits", action="store_false",
                      help="PRED holds probabilities (the loss: log loss, clipped as "
                      "scikit-learn's); default: detected from the first rows")
    parser.add_argument("--axis", type=int, default=-1, help="the class axis of PRED (default -1)")
    parser.add_argument("--ignore-index", type=int, default=None,
                        help="a label whose rows count for nothing (default -100)")
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="rows read at a time (default: about 16 MB of PRED)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run the chunks on a Dask cluster, e.g. tcp://host:8786 "
                        "(pip install 'fastxent[dask]'); the files must be readable there")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar on stderr (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--no-accuracy", dest="accuracy", action="store_false",
                        help="skip the accuracy (an argmax of every row)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        r = score(args.pred, args.target, from_logits=args.from_logits, axis=args.axis,
                  ignore_index=args.ignore_index, chunk_rows=args.chunk_rows,
                  scheduler=args.scheduler, progress=progress, accuracy=args.accuracy)
    except (OSError, ValueError, TypeError, IndexError) as exc:
        print(f"python -m fastxent score: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r))
        return 0
    name = "cross-entropy" if r["kind"].startswith("logits") else "log loss"
    print(f"predictions: {r['predictions']} {tuple(r['shape'])} {r['dtype']}, {r['kind']}")
    print(f"targets:     {r['targets']}")
    print(f"{name}: {r['loss']:.8g} (mean over {r['count']:.10g} of {r['rows']} rows)")
    print(f"sum:         {r['sum']:.10g}")
    print(f"perplexity:  {r['perplexity']:.8g}")
    if r["accuracy"] is not None:
        print(f"accuracy:    {r['accuracy']:.6f}")
    print(f"time:        {r['seconds']:.3f} s")
    return 0
