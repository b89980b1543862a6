"""The results: rows (one per implementation, workload and thread count), the
table and notes printed, the JSON file, the plot, and the Markdown table of
the README (made from the JSON)."""

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO, TypedDict

import numpy as np

from .implementations import FLOORS, IMPL_NAMES, IMPLEMENTATIONS, FloorName, floor_of
from .peers import PEERS, Impl, Peers, usable_cpus
from .workloads import OPS, OpName, Workload

BYTES = "the floor's traffic: xent 2*N*C*itemsize, xent-fwd N*C*itemsize, bce 3*n*itemsize"


class Row(TypedDict):
    """One implementation on one workload and thread count (times in ms)."""
    op: OpName
    workload: str  # shape_name(shape)
    shape: list[int]
    dtype: str
    threads: int
    implementation: str  # a key of IMPLEMENTATIONS
    label: str
    rounds: int
    median_ms: float
    min_ms: float
    bytes: int  # the floor's traffic
    gb_per_s: float
    speedup_vs_numpy: float
    speedup_vs_torch: float | None
    best_peer: str | None
    speedup_vs_best_peer: float | None
    floor: FloorName
    ratio_to_floor: float
    floor_threads: int | None
    samples_ms: list[float]


class Results(TypedDict):
    """The JSON file of --json: the configuration, then every row."""
    config: dict[str, Any]  # fastxent.show_config()'s facts (_config.config())
    cpus: int
    numpy: str
    peers: dict[str, str | None]  # name -> version, None where not usable
    load_average: float | None  # 1-minute, when the run began
    load_average_end: float | None
    repeat: int
    max_seconds: float
    floors: dict[str, str]  # op -> what its floor moves
    bytes: str
    elapsed_s: float
    results: list[Row]


# (op, workload, dtype, implementation label, fewest threads, threads, speed-up)
Scaling = tuple[OpName, str, str, str, int, int, float]


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None


def config_line(cfg: Mapping[str, Any], peers: Peers) -> str:
    versions = peers.versions()
    load = load_average()
    return (f"fastxent {cfg['version']} | backend {cfg['backend']} | simd {cfg['simd']} | "
            f"openmp {cfg['openmp']} | threads {cfg['threads']} | cpus {usable_cpus()} | "
            f"numpy {np.__version__}"
            + "".join(f" | {k} {v or 'not usable'}" for k, v in versions.items())
            + ("" if load is None else f" | load {load:.2f}"))


def make_rows(w: Workload, threads: int, impls: Mapping[str, Impl],
              samples: Mapping[str, Sequence[float]]) -> list[Row]:
    """The result rows of one workload and thread count, from its samples
    (name -> seconds per call). 'x floor' is against the implementation's
    floor (floor_of); 'vs best peer' against the quickest peer of the block."""
    medians = {name: float(np.median(s)) for name, s in samples.items()}
    peers: list[str] = [name for name in medians if name in PEERS]
    best_peer = min(peers, key=medians.__getitem__) if peers else None
    rows: list[Row] = []
    for name, s in samples.items():
        med = medians[name]
        floor = floor_of(name, impls)
        rows.append({
            "op": w.op, "workload": w.name, "shape": list(w.shape), "dtype": w.dtype,
            "threads": threads, "implementation": name, "label": impls[name].label,
            "rounds": len(s), "median_ms": med * 1e3, "min_ms": min(s) * 1e3,
            "bytes": w.nbytes, "gb_per_s": w.nbytes / med / 1e9,
            "speedup_vs_numpy": medians["numpy-reference"] / med,
            "speedup_vs_torch": medians["torch"] / med if "torch" in medians else None,
            "best_peer": best_peer,
            "speedup_vs_best_peer": medians[best_peer] / med if best_peer else None,
            "floor": floor,
            "ratio_to_floor": med / medians[floor],
            "floor_threads": impls[floor].threads,
            "samples_ms": [x * 1e3 for x in s],
        })
    return rows


def _ms(x: float) -> str:
    return f"{x:>10.3f}" if x >= 1 else f"{x:>10.4f}"


def _ratio(x: float | None, suffix: str = "") -> str:
    return f"{'-':>8}" if x is None else f"{x:>{8 - len(suffix)}.2f}{suffix}"


def print_table(rows: Sequence[Row], file: TextIO | None = None) -> None:
    file = file if file is not None else sys.stdout
    with_torch = any(r["speedup_vs_torch"] is not None for r in rows)
    with_peers = any(r["best_peer"] is not None for r in rows)
    header = (f"{'op':<8} {'workload':<11} {'dtype':<7} {'threads':>7}  {'implementation':<34} "
              f"{'median ms':>10} {'GB/s':>8} {'vs numpy':>8}"
              + (f" {'vs torch':>8}" if with_torch else "")
              + (f" {'vs best peer':>12}" if with_peers else "") + f" {'x floor':>8}")
    print(header, file=file)
    print("-" * len(header), file=file)
    previous = None
    for row in rows:
        block = (row["op"], row["workload"], row["dtype"], row["threads"])
        if previous is not None and block != previous:
            print(file=file)
        previous = block
        print(f"{row['op']:<8} {row['workload']:<11} {row['dtype']:<7} {row['threads']:>7}  "
              f"{row['label']:<34} {_ms(row['median_ms'])} {row['gb_per_s']:>8.3g} "
              f"{_ratio(row['speedup_vs_numpy'], 'x')}"
              + (f" {_ratio(row['speedup_vs_torch'], 'x')}" if with_torch else "")
              + (f"     {_ratio(row['speedup_vs_best_peer'], 'x')}" if with_peers else "")
              + f" {_ratio(row['ratio_to_floor'])}"
              + ("*" if row["floor"] == "floor-fresh" and row["implementation"] not in FLOORS
                 else ""), file=file)


def thread_scaling(rows: Sequence[Row]) -> list[Scaling]:
    """(op, workload, dtype, implementation label, fewest threads, threads, speed-up) for
    every implementation timed with more than one thread count."""
    by_key: dict[tuple[OpName, str, str, str], list[Row]] = {}
    for r in rows:
        by_key.setdefault((r["op"], r["workload"], r["dtype"], r["implementation"]), []).append(r)
    out: list[Scaling] = []
    for (op, workload, dtype, name), rs in by_key.items():
        if len(rs) < 2 or name == "numpy-reference":  # one thread whatever the row says
            continue
        base = min(rs, key=lambda r: r["threads"])
        for r in rs:
            if r is not base:
                out.append((op, workload, dtype, r["label"], base["threads"], r["threads"],
                            base["median_ms"] / r["median_ms"]))
    return out


def print_notes(rows: Sequence[Row], file: TextIO | None = None) -> None:
    file = file if file is not None else sys.stdout
    rounds = sorted({r["rounds"] for r in rows})
    cut = sorted({f"{r['op']} {r['workload']} {r['dtype']}" for r in rows
                  if r["rounds"] != max(rounds)})
    ops = list(dict.fromkeys(r["op"] for r in rows))
    lines = [f"Medians of {max(rounds)} interleaved rounds"
             + (f" ({min(rounds)} for {', '.join(cut)}: --max-seconds)" if cut else "") + "."]
    lines.append("GB/s: the floor's bytes / time. 'vs numpy', 'vs torch', 'vs best peer': "
                 "speed-up over the NumPy reference (1 thread), eager PyTorch and the quickest "
                 "peer of the block; 'x floor': time / the floor's time.")
    for op in ops:
        lines.append(f"{op}: {OPS[op].title}; floor = multithreaded {OPS[op].floor}.")
    if any(r["floor"] == "floor-fresh" and r["implementation"] not in FLOORS for r in rows):
        lines.append("*: against the copy into fresh memory (page faults and zeroing included): "
                     "the call allocates its gradient.")
    if any(r["floor_threads"] != r["threads"] for r in rows):
        lines.append("floor (1 thread): one thread moved those bytes quicker than more, so that "
                     "is the floor (small inputs; also large ones on a busy machine).")
    if any(r["implementation"] == "torch-compile" for r in rows):
        lines.append("torch-compile: torch.compile (Inductor) of the loss, backward included, "
                     "compiled once per thread count before the timing.")
    if any(r["implementation"] == "sklearn" for r in rows):
        lines.append("sklearn: sklearn._loss Half*Loss.loss_gradient (per-sample losses and "
                     "gradients into preallocated buffers, n_threads = threads).")
    if any(r["implementation"] == "jax" for r in rows):
        lines.append("jax: XLA's own thread pool (all CPUs), shown only where threads = CPUs.")
    for line in lines:
        print(line, file=file)
    scaling = thread_scaling(rows)
    if scaling:
        print("\nThread scaling (time with the fewest threads / time with more, interleaved "
              "in the same rounds):", file=file)
        for op, workload, dtype, label, t0, t1, s in scaling:
            print(f"  {op:<8} {workload:<11} {dtype:<7} {label:<34} {t0} -> {t1} threads: "
                  f"{s:.2f}x", file=file)


def write_json(path: str, *, cfg: dict[str, Any], peers: Peers, load_start: float | None,
               repeat: int, max_seconds: float, elapsed: float, rows: list[Row]) -> None:
    """The configuration and every result (with all samples); the 1-minute load
    average when the run began and when it ended."""
    results: Results = {"config": cfg, "cpus": usable_cpus(), "numpy": np.__version__,
                        "peers": peers.versions(), "load_average": load_start,
                        "load_average_end": load_average(),
                        "repeat": repeat, "max_seconds": max_seconds,
                        "floors": {op: OPS[op].floor for op in OPS}, "bytes": BYTES,
                        "elapsed_s": elapsed, "results": rows}
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def check_plot_support() -> str | None:
    """None if --plot can work here, else the message to print."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        return (f"fastxent bench: --plot needs matplotlib, which cannot be imported here "
                f"({exc}); install it (pip install matplotlib) or drop --plot")
    return None


def plot(rows: Sequence[Row], path: str, title: str) -> None:
    """Horizontal bars, one group per block: each implementation's median time
    over its floor's (log scale, 1 = the floor), the median in ms written beside."""
    from matplotlib.figure import Figure

    blocks = list(dict.fromkeys((r["op"], r["workload"], r["dtype"], r["threads"]) for r in rows))
    names = [n for n in IMPL_NAMES if any(r["implementation"] == n for r in rows)]
    colors = {n: f"C{i}" for i, n in enumerate(names)}
    colors["floor"], colors["floor-fresh"] = "0.55", "0.75"
    positions: list[float] = []
    labels_at: list[str] = []
    y = 0.0
    fig = Figure(figsize=(10, 1.2 + 0.22 * (len(rows) + 1.5 * len(blocks))))
    ax = fig.add_subplot()
    seen: set[str] = set()
    for block in reversed(blocks):
        brows = [r for r in rows if (r["op"], r["workload"], r["dtype"], r["threads"]) == block]
        brows.sort(key=lambda r: -IMPL_NAMES.index(r["implementation"]))
        start = y
        for r in brows:
            name = r["implementation"]
            ax.barh(y, r["ratio_to_floor"], height=0.8, color=colors[name],
                    label=IMPLEMENTATIONS[name] if name not in seen else None)
            seen.add(name)
            ms = r["median_ms"]
            ax.text(r["ratio_to_floor"] * 1.04, y, f"{ms:.0f} ms" if ms >= 100 else f"{ms:.3g} ms",
                    va="center", fontsize=7)
            y += 1
        positions.append((start + y - 1) / 2)
        op, workload, dtype, threads = block
        labels_at.append(f"{op}\n{workload} {dtype}\n{threads} thread{'s' * (threads > 1)}")
        y += 1.5
    ax.set_xscale("log")
    ax.axvline(1.0, color="0.3", linewidth=0.8, linestyle="--")
    ax.set_yticks(positions, labels_at, fontsize=8)
    ax.set_ylim(-1, y - 0.5)
    ratios = [r["ratio_to_floor"] for r in rows]
    ax.set_xlim(min(0.5, min(ratios) / 1.5), max(ratios) * 3)
    ax.set_xlabel("median time / memory-floor time (log scale; 1 = the floor: the copy into "
                  "fresh memory for allocating calls)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_title(title, fontsize=7, loc="left")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def wrap(text: str, width: int = 150) -> str:
    parts: list[str] = []
    line = ""
    for piece in text.split(" | "):
        if line and len(line) + len(piece) + 3 > width:
            parts.append(line)
            line = piece
        else:
            line = f"{line} | {piece}" if line else piece
    return "\n".join(parts + [line])


# ---------------------------------------------------------------- Markdown

_OP_TITLES = {"xent": "cross-entropy fwd+bwd", "xent-fwd": "cross-entropy forward only",
              "bce": "binary CE with logits fwd+bwd"}
_PEER_NAMES = {"torch": "PyTorch", "torch-compile": "torch.compile", "sklearn": "scikit-learn",
               "jax": "JAX"}


def _workload_title(r: Row) -> str:
    shape = r["workload"].replace("x", " x ") if len(r["shape"]) == 2 else \
        f"{r['workload']} elements"
    return f"{_OP_TITLES[r['op']]} {shape} {r['dtype']}"


def _times(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _duration(ms: float) -> str:
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def markdown_table(data: Results) -> str:
    """The README's performance table (Markdown) from the bench's JSON `data`:
    a line per fastxent row (out= and allocating, each thread count)."""
    rows = data["results"]
    header = "| workload | threads | fastxent | vs NumPy | vs PyTorch | vs best peer | x floor |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["implementation"] not in ("fastxent", "fastxent-out"):
            continue
        how = ", `out=`" if r["implementation"] == "fastxent-out" else \
            (", allocating" if r["op"] != "xent-fwd" else "")
        best = r.get("best_peer")
        vs_best = f"{_times(r['speedup_vs_best_peer'])} ({_PEER_NAMES.get(best, best)})" \
            if best else ""
        floor = {"floor": "copy", "floor-fresh": "fresh copy"}[r["floor"]] \
            if r["op"] != "xent-fwd" else "read"
        lines.append(f"| {_workload_title(r)}{how} | {r['threads']} | "
                     f"{_duration(r['median_ms'])} | {_times(r['speedup_vs_numpy'])} | "
                     f"{_times(r['speedup_vs_torch'])} | {vs_best} | "
                     f"{r['ratio_to_floor']:.2f} ({floor}) |")
    return "\n".join(lines) + "\n"


def markdown_caption(data: Results) -> str:
    """One line naming what produced the table: versions, CPUs, load, rounds."""
    cfg = data["config"]
    peers = ", ".join(f"{_PEER_NAMES.get(k, k)} {v}" for k, v in data["peers"].items()
                      if v and k != "torch-compile")
    load, load_end = data.get("load_average"), data.get("load_average_end")
    rounds = max(r["rounds"] for r in data["results"])
    return (f"fastxent {cfg['version']} ({cfg['simd']}, {cfg['threads']} threads by default), "
            f"{data['cpus']} CPUs, NumPy {data['numpy']}" + (f", {peers}" if peers else "")
            + (f"; 1-minute load average {load:.2f} when the run began"
               + (f", {load_end:.2f} when it ended" if load_end is not None else "")
               if load is not None else "")
            + f"; medians of {rounds} interleaved rounds, {data['elapsed_s']:.0f} s.")
