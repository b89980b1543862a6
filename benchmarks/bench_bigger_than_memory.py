"""Scoring prediction files on disk: time and peak memory.

For a float32 (rows x classes) file of logits (and one of probabilities, for
scikit-learn) with int64 labels, each measured in a fresh process :

* read      - the files read once, in 16 MB pieces into one buffer (the floor
              for ``score``: the time to read the file once)
* read-p    - the same for the probabilities' file (score-p's floor)
* kernels   - score's computing alone: the same chunks' loss and accuracy
              (fastxent.stream.Accumulator) on the logits already in memory
              (loaded before the clock starts; peak memory is the whole file)
* score     - python -m fastxent score (cross-entropy of the logits, and accuracy)
* score-noacc - the same with --no-accuracy
* score-p   - python -m fastxent score --probs (log loss of the probabilities,
              and accuracy)
* sklearn   - sklearn.metrics.log_loss on the probabilities (np.load mmap)
* dask      - fastxent.dask.cross_entropy on a LocalCluster of 2 worker processes
* dask-plain - the same loss as a plain dask.array expression, same cluster

Peak memory is each process's VmHWM (Linux): the measuring process's, and for
Dask the largest of it and its workers'. It counts the file's pages a
process maps (score's chunks) as well as what it allocates.

By default the files are in the page cache ("warm": read is a memory-speed
floor). With --cold, every run starts with the files' pages dropped from the
page cache (posix_fadvise POSIX_FADV_DONTNEED, no root needed), so each reads
from the disk.

Run:  python benchmarks/bench_bigger_than_memory.py --rows 20000000 --classes 10
      python benchmarks/bench_bigger_than_memory.py --rows 2000000 --classes 1000 --skip sklearn kernels
      (add --cold to read from the disk; --dir DIR --reuse to keep the files between runs)
The files go to --dir (default: a temporary directory, removed at the end).

The figures, their commands and the machine they ran on are in
docs/benchmarks.md ("Files bigger than memory") and the README.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

CHUNK_BYTES = 16 << 20

SNIPPETS = {
    "read": """
        import numpy as np, time
        t0 = time.perf_counter()
        total = 0
        for path in (PRED, TARGET):
            with open(path, "rb") as f:
                buf = bytearray(CHUNK)
                while (n := f.readinto(buf)):
                    total += n
        result = dict(seconds=time.perf_counter() - t0, value=total)
    """,
    "read-p": """
        import time
        t0 = time.perf_counter()
        total = 0
        for path in (PROBS, TARGET):
            with open(path, "rb") as f:
                buf = bytearray(CHUNK)
                while (n := f.readinto(buf)):
                    total += n
        result = dict(seconds=time.perf_counter() - t0, value=total)
    """,
    "kernels": """
        import numpy as np, time
        from fastxent.stream import Accumulator
        x, t = np.load(PRED), np.load(TARGET)
        rows = max(1, CHUNK // (x.itemsize * x.shape[1]))
        t0 = time.perf_counter()
        acc = Accumulator(accuracy=True)
        for start in range(0, len(x), rows):
            acc.update(x[start:start + rows], t[start:start + rows])
        result = dict(seconds=time.perf_counter() - t0, value=acc.result().mean)
    """,
    "score": """
        import time
        from fastxent._score import score
        t0 = time.perf_counter()
        r = score(PRED, TARGET, from_logits=True)
        result = dict(seconds=time.perf_counter() - t0, value=r["loss"])
    """,
    "score-noacc": """
        import time
        from fastxent._score import score
        t0 = time.perf_counter()
        r = score(PRED, TARGET, from_logits=True, accuracy=False)
        result = dict(seconds=time.perf_counter() - t0, value=r["loss"])
    """,
    "score-p": """
        import time
        from fastxent._score import score
        t0 = time.perf_counter()
        r = score(PROBS, TARGET, from_logits=False)
        result = dict(seconds=time.perf_counter() - t0, value=r["loss"])
    """,
    "sklearn": """
        import numpy as np, time
        from sklearn.metrics import log_loss
        t0 = time.perf_counter()
        p = np.load(PROBS, mmap_mode="r")
        y = np.load(TARGET, mmap_mode="r")
        value = log_loss(y, p)
        result = dict(seconds=time.perf_counter() - t0, value=value)
    """,
    "dask": """
        import time, dask.array as da
        from dask.distributed import LocalCluster, Client
        import fastxent.dask
        from fastxent._score import NpySource
        if __name__ == "__main__":
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster, \\
                    Client(cluster) as client:
                x_src, t_src = NpySource(PRED), NpySource(TARGET)
                rows = max(1, CHUNK // x_src.row_bytes)
                x = da.from_array(x_src, chunks=(rows, -1), asarray=True)
                t = da.from_array(t_src, chunks=(rows,), asarray=True)
                t0 = time.perf_counter()
                value = float(fastxent.dask.cross_entropy(x, t).compute())
                result = dict(seconds=time.perf_counter() - t0, value=value,
                              peak_mb=max([hwm(), *client.run(hwm).values()]))
    """,
    "dask-plain": """
        import time, dask.array as da, numpy as np
        from dask.distributed import LocalCluster, Client
        from fastxent._score import NpySource
        if __name__ == "__main__":
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster, \\
                    Client(cluster) as client:
                x_src, t_src = NpySource(PRED), NpySource(TARGET)
                rows = max(1, CHUNK // x_src.row_bytes)
                x = da.from_array(x_src, chunks=(rows, -1), asarray=True)
                t = da.from_array(t_src, chunks=(rows,), asarray=True)
                t0 = time.perf_counter()
                top = x.max(axis=1, keepdims=True)
                lse = da.log(da.exp(x - top).sum(axis=1, dtype=np.float64)) + top[:, 0]
                picked = da.where(da.arange(x.shape[1]) == t[:, None], x, 0).sum(axis=1)
                value = float((lse - picked).mean().compute())
                result = dict(seconds=time.perf_counter() - t0, value=value,
                              peak_mb=max([hwm(), *client.run(hwm).values()]))
    """,
}


HWM = """
def hwm():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024
"""


def write_files(directory, rows, classes, with_probs, seed=0):
    """Logits, probabilities (their softmax) and labels, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    paths = {k: os.path.join(directory, f"{k}.npy") for k in ("pred", "probs", "target")}
    pred = np.lib.format.open_memmap(paths["pred"], "w+", np.float32, (rows, classes))
    probs = (np.lib.format.open_memmap(paths["probs"], "w+", np.float32, (rows, classes))
             if with_probs else None)
    target = np.lib.format.open_memmap(paths["target"], "w+", np.int64, (rows,))
    step = max(1, CHUNK_BYTES // (4 * classes))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        x = rng.standard_normal((stop - start, classes), dtype=np.float32) * 2
        pred[start:stop] = x
        if probs is not None:
            e = np.exp(x - x.max(axis=1, keepdims=True))
            probs[start:stop] = e / e.sum(axis=1, keepdims=True)
        target[start:stop] = rng.integers(0, classes, stop - start)
    for m in (pred, probs, target):
        if m is not None:
            m.flush()
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--dir", default=None, help="where to write the files")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the files of an earlier run in --dir, if they are there")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, interleaved")
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(SNIPPETS))
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(SNIPPETS),
                        help="run only these (read is always run)")
    parser.add_argument("--cold", action="store_true",
                        help="drop the files from the page cache before every run")
    args = parser.parse_args(argv)
    directory = args.dir or tempfile.mkdtemp(prefix="fastxent-bench-")
    try:
        t0 = time.perf_counter()
        names = [n for n in SNIPPETS if n not in args.skip
                 and (args.only is None or n in args.only or n == "read")]
        with_probs = bool({"sklearn", "score-p", "read-p"} & set(names))
        paths = {k: os.path.join(directory, f"{k}.npy") for k in ("pred", "probs", "target")}
        if not (args.reuse and all(os.path.exists(paths[k]) for k in
                                   (["pred", "target"] + (["probs"] if with_probs else [])))):
            paths = write_files(directory, args.rows, args.classes, with_probs)
        size = os.path.getsize(paths["pred"])
        print(f"{args.rows} x {args.classes} float32: {size / 1e9:.2f} GB a file, written in "
              f"{time.perf_counter() - t0:.1f} s")
        if not args.cold:  # warm the page cache once
            for name in ("read", "read-p") if with_probs else ("read",):
                _measure_with_peak(name, paths)
        print(f"page cache: {'dropped before every run (cold)' if args.cold else 'warm'}; "
              f"load average {os.getloadavg()[0]:.2f}")
        times = {n: [] for n in names}
        peaks = {}
        for _ in range(args.repeat):
            for name in names:
                if args.cold:
                    _drop_from_page_cache(paths.values())
                r = _measure_with_peak(name, paths)
                times[name].append(r["seconds"])
                peaks[name] = max(peaks.get(name, 0), r["peak_mb"])
                value = r["value"]
                print(f"  {name:<11} {r['seconds']:8.2f} s  peak {r['peak_mb']:8.0f} MB  "
                      f"value {value}", flush=True)
        print("\nmedians:")
        for name in names:
            med = float(np.median(times[name]))
            floor = "read-p" if name in ("score-p", "sklearn") and "read-p" in times else "read"
            base = float(np.median(times[floor])) if floor in times else None
            ratio = f"{med / base:5.2f}x {floor:<6}" if base else ""
            print(f"  {name:<11} {med:8.2f} s  {ratio}  peak {peaks[name]:8.0f} MB")
        if "dask" in times and "dask-plain" in times:
            print(f"  dask / dask-plain: {np.median(times['dask']) / np.median(times['dask-plain']):.2f}")
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)


def _drop_from_page_cache(paths):
    """The files' pages out of the page cache (written back first), so that
    the next read of them comes from the disk."""
    for path in paths:
        if os.path.exists(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _measure_with_peak(name, paths):
    """A snippet's result (seconds, value, peak_mb) from a fresh process."""
    code = textwrap.dedent(SNIPPETS[name]).replace("PRED", repr(paths["pred"])) \
        .replace("PROBS", repr(paths["probs"])).replace("TARGET", repr(paths["target"])) \
        .replace("CHUNK", str(CHUNK_BYTES))
    code = HWM + code + ("\nimport json\nif __name__ == '__main__':\n"
                         "    result.setdefault('peak_mb', hwm())\n"
                         "    print('RESULT', json.dumps(result))\n")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)  # a file, not -c: the cluster's spawned workers re-import it
    try:
        with tempfile.TemporaryFile("w+") as log:  # Dask logs a lot: not into a pipe
            proc = subprocess.Popen([sys.executable, f.name], stdout=subprocess.PIPE,
                                    stderr=log, text=True)
            out = proc.stdout.read()
            proc.wait()
            log.seek(0)
            err = log.read()
    finally:
        os.unlink(f.name)
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{err[-3000:]}")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[7:])


if __name__ == "__main__":
    main()
