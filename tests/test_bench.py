"""`python -m fastxent bench` runs, prints its table, writes its JSON and plot.

A smoke test: tiny workloads, two rounds, no timing asserted. The peers
(PyTorch, scikit-learn, JAX) are left out of the command-line run, whose time
would be their import; their adapters are checked in-process instead, where
the test session has usually imported them already.
"""

import argparse
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastxent
from fastxent import bench
from fastxent.bench.progress import Progress
from fastxent.bench import arguments, floors, peers as bench_peers, report, workloads

OPS = ("xent", "xent-fwd", "bce")
LABELS = {  # the implementations each op shows without peers
    "xent": ["fastxent", "fastxent out=", "numpy reference", "floor: copy", "floor: fresh copy"],
    "xent-fwd": ["fastxent", "numpy reference", "floor: read"],
    "bce": ["fastxent", "fastxent out=", "numpy reference", "floor: copy+read",
            "floor: fresh copy+read"],
}
ALLOCATING = {"fastxent", "numpy reference"}  # measured against the fresh-page floor
COLUMNS = ["op", "workload", "dtype", "threads", "implementation", "median ms", "GB/s",
           "vs numpy", "x floor"]
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run_bench(*args, pythonpath=()):
    """python -m fastxent bench ARGS, finding this fastxent whether installed or not."""
    package_root = str(Path(fastxent.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [*map(str, pythonpath), package_root, env.get("PYTHONPATH")]))
    env.pop("FASTXENT_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "fastxent", "bench", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One run of every op on 64x10 with 1 and 2 threads (interleaved in one
    round-robin per op): (result, JSON path, PNG path)."""
    tmp = tmp_path_factory.mktemp("bench")
    json_path, png_path = tmp / "bench.json", tmp / "bench.png"
    args = ["--shapes", "64x10", "--repeat", "2", "--ops", ",".join(OPS), "--threads", "1,2",
            "--peers", "none", "--json", str(json_path)]
    if HAVE_MATPLOTLIB:
        args += ["--plot", str(png_path)]
    return run_bench(*args), json_path, png_path


def table_rows(stdout):
    """The table's header and rows (blank lines between blocks left out)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("op "))
    rows = []
    for line in lines[start + 2:]:
        if line.strip() and line.split()[0] not in OPS:
            break
        if line.strip():
            rows.append(line)
    return lines[start], rows


def test_table(tiny_run):
    result, _, _ = tiny_run
    assert result.returncode == 0, result.stderr
    header, rows = table_rows(result.stdout)
    for column in COLUMNS:
        assert column in header
    assert "vs torch" not in header  # no torch in this run: no torch column
    expected = [(op, threads, label) for op in OPS for threads in (1, 2) for label in LABELS[op]]
    seen = []
    label_at, numbers_at = header.index("implementation"), header.index("median ms") - 1
    for row in rows:
        op, workload, dtype, threads = row[:label_at].split()
        assert (workload, dtype) == ("64x10", "float32")
        label = row[label_at:numbers_at].strip()
        if label.startswith("floor: "):  # one thread where that is quicker, and said so
            label = label.removesuffix(" (1 thread)")
        seen.append((op, int(threads), label))
        numbers = row[numbers_at:].split()
        assert len(numbers) == 4, row  # median ms, GB/s, vs numpy, x floor
        assert all(float(n.rstrip("x*")) >= 0 for n in numbers), row  # tiny: GB/s may be 0.00
        if label.startswith("floor"):
            assert numbers[-1] == "1.00"
        # allocating calls against the fresh-page floor, marked so; out= against the copy
        assert numbers[-1].endswith("*") == (op != "xent-fwd" and label in ALLOCATING), row
        if label == "numpy reference":
            assert numbers[2] == "1.00x"
    assert seen == expected
    assert "Thread scaling" in result.stdout
    assert result.stdout.splitlines()[0].startswith(f"fastxent {fastxent.__version__} | backend ")


def test_progress_on_stderr(tiny_run):
    result, _, _ = tiny_run
    # not a terminal: a line per block
    blocks = [line for line in result.stderr.splitlines() if line.startswith("bench: [")]
    assert blocks == [f"bench: [{i}/3] {op} 64x10 float32, 1,2 threads"
                      for i, op in enumerate(OPS, 1)], result.stderr
    assert "bench: [" not in result.stdout


def test_json(tiny_run):
    result, json_path, _ = tiny_run
    assert result.returncode == 0, result.stderr
    data = json.loads(json_path.read_text())
    assert data["repeat"] == 2
    assert data["config"]["version"] == fastxent.__version__
    rows = data["results"]
    assert len(rows) == sum(len(labels) for labels in LABELS.values()) * 2
    for row in rows:
        assert row["op"] in OPS and row["shape"] == [64, 10] and row["threads"] in (1, 2)
        assert len(row["samples_ms"]) == row["rounds"] == 2
        assert row["median_ms"] > 0 and row["gb_per_s"] > 0 and row["ratio_to_floor"] > 0
    floors = [r for r in rows if r["implementation"] in ("floor", "floor-fresh")]
    assert len(floors) == 10 and all(r["ratio_to_floor"] == 1 for r in floors)
    assert all(r["floor_threads"] in (1, r["threads"]) for r in rows)
    bce_floor = next(r for r in floors if r["op"] == "bce")
    assert bce_floor["bytes"] == 3 * 64 * 10 * 4
    # each ratio is the median over the median of the floor the row names
    medians = {(r["op"], r["threads"], r["implementation"]): r["median_ms"] for r in rows}
    for r in rows:
        expected = {"fastxent": "floor-fresh" if r["op"] != "xent-fwd" else "floor",
                    "numpy-reference": "floor-fresh" if r["op"] != "xent-fwd" else "floor",
                    "fastxent-out": "floor"}.get(r["implementation"], r["implementation"])
        assert r["floor"] == expected
        assert r["ratio_to_floor"] == pytest.approx(
            r["median_ms"] / medians[r["op"], r["threads"], expected], rel=1e-12)
        assert r["best_peer"] is None and r["speedup_vs_best_peer"] is None  # --peers none


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed: --plot not tried")
def test_plot(tiny_run):
    result, _, png_path = tiny_run
    assert result.returncode == 0, result.stderr
    assert f"plot written to {png_path}" in result.stdout
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(tmp_path):
    # A matplotlib that cannot be imported: --plot says so, before any timing.
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib in this test')\n")
    result = run_bench("--shapes", "8x3", "--plot", str(tmp_path / "x.png"),
                       pythonpath=[fake.parent])
    assert result.returncode == 2
    assert "--plot needs matplotlib" in result.stderr
    assert "op " not in result.stdout
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- in-process

def parse(*argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def make_plan(args, default_threads):
    return workloads.make_plan(args.ops, args.shapes, args.dtype, args.threads, args.full,
                               default_threads)


@pytest.mark.parametrize("argv", [
    ["--shapes", "0x3"], ["--shapes", "8x"], ["--shapes", "2x3x4"], ["--ops", "xent,softmax"],
    ["--threads", "0"], ["--dtype", "float16"], ["--repeat", "0"], ["--peers", "tensorflow"],
    ["--max-seconds", "-1"],
])
def test_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "expected" in capsys.readouterr().err


def test_plan_default_and_shapes():
    plan = make_plan(parse(), default_threads=3)
    assert [(b.op, b.shape, b.dtype, b.threads) for b in plan] == [
        ("xent", (8192, 1000), "float32", (3,)), ("xent", (65536, 10), "float32", (3,)),
        ("xent-fwd", (8192, 1000), "float32", (3,)), ("bce", (4 << 20,), "float32", (3,))]
    # a number of elements is a shape for bce only; 2-D shapes serve every op
    plan = make_plan(parse("--shapes", "16Mi,32x10", "--dtype", "float32,float64",
                                  "--threads", "1,2"), default_threads=3)
    assert {(b.op, b.shape) for b in plan} == {
        ("xent", (32, 10)), ("xent-fwd", (32, 10)), ("bce", (16 << 20,)), ("bce", (32, 10))}
    assert {b.dtype for b in plan} == {"float32", "float64"}
    assert {b.threads for b in plan} == {(1, 2)}
    with pytest.raises(ValueError, match="no rows x classes shape"):
        make_plan(parse("--shapes", "1000", "--ops", "xent"), default_threads=1)


def test_plan_full():
    plan = make_plan(parse("--full"), default_threads=2)
    blocks = {(b.op, bench.shape_name(b.shape), b.dtype): b.threads for b in plan}
    for op, workload, dtype in [("xent", "8192x1000", "float32"), ("xent", "2048x32768", "float32"),
                                ("xent", "8192x1000", "float64"), ("xent", "65536x10", "float32"),
                                ("xent", "32x10", "float32"), ("xent-fwd", "2048x32768", "float32"),
                                ("bce", "16Mi", "float32")]:
        assert blocks[op, workload, dtype] == (2,)
    for workload in ("4x262144", "2x524288", "1x1048576"):  # two threads against one
        assert blocks["xent", workload, "float32"] == (1, 2)
    # issue 17's shapes, in both dtypes where it asks, and BCE of at least 32 MiB
    assert blocks["xent", "65536x10", "float64"] == (2,)
    assert blocks["bce", "16Mi", "float64"] == (2,)
    only = make_plan(parse("--full", "--ops", "bce", "--threads", "4"), default_threads=2)
    assert [(b.op, b.dtype, b.threads) for b in only] == [("bce", "float32", (4,)),
                                                          ("bce", "float64", (4,))]
    with pytest.raises(ValueError, match="--full"):
        make_plan(parse("--full", "--shapes", "8x3"), default_threads=2)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_implementation_agrees(op, dtype):
    # Each peer installed here (PyTorch, scikit-learn, JAX) against the NumPy
    # reference, as the bench checks before timing; and the floors move their bytes.
    # (torch.compile takes seconds per compilation: tested once, below.)
    w = bench.make_workload(op, (37, 5) if op != "bce" else (1001,), dtype)
    peers = bench.import_peers(x64=dtype == "float64", names=("torch", "sklearn", "jax"))
    warnings = []
    threads = bench.usable_cpus()  # JAX takes part only with all CPUs
    impls = bench.make_implementations(w, threads, peers, warn=warnings.append)
    assert not warnings
    expected = {"fastxent", "numpy-reference", "floor"} | (
        {"fastxent-out", "floor-fresh"} if op != "xent-fwd" else set())
    expected |= {name for name, mod in [("torch", peers.torch), ("sklearn", peers.sklearn_loss),
                                        ("jax", peers.jax)] if mod is not None}
    assert set(impls) == expected
    with bench.using_threads(threads, peers.torch):
        bench.check(impls, "test")
    assert list(impls) == [n for n in bench.IMPL_NAMES if n in impls]  # the table's order


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("compiled", [True, False])
def test_floors(op, compiled, monkeypatch):
    # Odd sizes: read_floor's 64-bit words leave out the last float32.
    w = bench.make_workload(op, (33, 7) if op != "bce" else (1001,), "float32")
    if not compiled:  # no extension: single-threaded NumPy copies and reads, labelled so
        monkeypatch.setattr(floors, "_floors", None)
    elif floors._floors is None:
        pytest.skip("the bench's floor extension is not available")
    impls = bench.make_implementations(w, 2)
    names = ["floor"] + (["floor-fresh"] if op != "xent-fwd" else [])
    assert [n for n in impls if n.startswith("floor")] == names
    for name in names:
        floor = impls[name]
        assert floor.verify()
        assert floor.label.startswith("floor: fresh " if name == "floor-fresh" else "floor: ")
        assert ("NumPy" in floor.label) == (not compiled)
        assert floor.threads in (1, 2)


@pytest.mark.parametrize("op", ["xent", "bce"])
def test_fresh_floor_writes_new_memory_each_call(op):
    # The fresh-page floor copies into memory allocated at each call (first
    # touched by its threads), as an allocating call writes; the copy floor
    # into the same buffer every time.
    w = bench.make_workload(op, (64, 1024) if op != "bce" else (65536,), "float32")
    for fresh in (True, False):
        floor = floors.floor_impl(w, 2, fresh=fresh)
        held = []  # kept alive, so that no address can be handed out twice
        for _ in range(3):
            floor.fn()
            held.append(floor.written())
            np.testing.assert_array_equal(held[-1].view(w.logits.dtype).reshape(w.shape),
                                          w.logits)
        addresses = {a.__array_interface__["data"][0] for a in held}
        assert len(addresses) == (3 if fresh else 1)
    impls = bench.make_implementations(w, 2)
    assert impls["fastxent"].allocates and not impls["fastxent-out"].allocates
    assert bench.floor_of("fastxent", impls) == "floor-fresh"
    assert bench.floor_of("fastxent-out", impls) == "floor"
    with pytest.raises(ValueError, match="xent-fwd"):
        floors.floor_impl(bench.make_workload("xent-fwd", (4, 3), "float32"), 1, fresh=True)


@pytest.mark.parametrize("stream", [False, True], ids=["memcpy", "streaming"])
def test_copy_floor_copies_every_byte(stream):
    # Sizes and destination offsets around the 16-byte stores' alignment.
    kernels = floors._floors
    if kernels is None:
        pytest.skip("the bench's floor extension is not available")
    src_all = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)
    for size in (0, 1, 15, 16, 17, 31, 33, 100, 4099):
        for offset in range(4):
            for threads in (1, 2):
                src = src_all[offset:offset + size]
                dst_all = np.zeros(size + 8, dtype=np.uint8)
                dst = dst_all[offset:offset + size]
                kernels.copy_floor(src, dst, threads, stream)
                np.testing.assert_array_equal(dst, src)
                assert not dst_all[:offset].any() and not dst_all[offset + size:].any()


def test_check_catches_a_wrong_implementation():
    w = bench.make_workload("xent", (16, 4), "float32")
    impls = bench.make_implementations(w, 1)
    impls["fastxent"].fn = lambda: (np.float32(1.0), np.zeros((16, 4), np.float32))
    with pytest.raises(bench.BenchError, match="fastxent .*disagrees.*loss"):
        bench.check(impls, "test")


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = Progress(2, stream=stream)
    progress.block("xent 8x3 float32, 1 thread")
    progress.start(4)
    progress.round(2)
    text = stream.getvalue()
    assert "\r" in text and "\n" not in text
    assert "bench [######......" in text and "1/2 xent 8x3 float32, 1 thread: round 2/4" in text
    progress.close()
    assert stream.getvalue().endswith("\r")
