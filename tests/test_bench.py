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
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastxent
from fastxent import bench
from fastxent.bench import arguments, floors, report, workloads
from fastxent.bench import peers as bench_peers
from fastxent.bench.progress import Progress

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
    ["--threads", "0"], ["--dtype", "float8"], ["--repeat", "0"], ["--peers", "tensorflow"],
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


@pytest.mark.parametrize("op", ["xent", "xent-fwd"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_workloads(op, dtype):
    # --dtype float16,bfloat16: the workload in that dtype, fastxent and
    # PyTorch in it, agreeing within its rounding; the floor moves its bytes.
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="bfloat16 workloads need ml_dtypes")
    assert parse("--dtype", "float16,bfloat16").dtype == ("float16", "bfloat16")
    w = bench.make_workload(op, (37, 50), dtype)
    assert w.logits.dtype.name == dtype and w.dtype == dtype
    peers = bench.import_peers(names=("torch",))
    impls = bench.make_implementations(w, 1, peers)
    assert "fastxent" in impls and ("torch" in impls) == (peers.torch is not None)
    with bench.using_threads(1, peers.torch):
        bench.check(impls, "test", dtype)


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
        floor = floors.floor_impl(w, 1, fresh=fresh)
        held = []  # kept alive, so that no address can be handed out twice
        for _ in range(3):
            floor.fn()
            held.append(floor.written())
            np.testing.assert_array_equal(held[-1].view(w.logits.dtype).reshape(w.shape),
                                          w.logits)
        addresses = {a.__array_interface__["data"][0] for a in held}
        assert len(addresses) == (3 if fresh else 1)
    impls = bench.make_implementations(w, 1)
    assert impls["fastxent"].allocates and not impls["fastxent-out"].allocates
    assert bench.floor_of("fastxent", impls) == "floor-fresh"
    assert bench.floor_of("fastxent-out", impls) == "floor"
    with pytest.raises(ValueError, match="xent-fwd"):
        floors.floor_impl(bench.make_workload("xent-fwd", (4, 3), "float32"), 1, fresh=True)


@pytest.mark.parametrize("stream, pieces", [(False, 0), (True, 0), (False, 7), (False, 16)],
                         ids=["memcpy", "streaming", "pieces-7", "pieces-16"])
def test_copy_floor_copies_every_byte(stream, pieces):
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
                kernels.copy_floor(src, dst, threads, stream, pieces)
                np.testing.assert_array_equal(dst, src)
                assert not dst_all[:offset].any() and not dst_all[offset + size:].any()


def test_copy_floor_rejects_bad_pieces():
    kernels = floors._floors
    if kernels is None:
        pytest.skip("the bench's floor extension is not available")
    src = np.arange(10, dtype=np.uint8)
    for stream, pieces in ((False, -1), (True, 16)):
        with pytest.raises(ValueError, match="pieces"):
            kernels.copy_floor(src, np.zeros_like(src), 1, stream, pieces)


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


# --------------------------------------------------------------------------- argument checks

def run_in_process(capsys, *argv):
    """bench.run on these options: (exit code, stdout, stderr lines)."""
    code = bench.run(parse(*argv))
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_thread_count_beyond_the_limit_is_one_line():
    # Before: an OverflowError traceback (2**31) or libgomp ending the process.
    result = run_bench("--threads", "2147483648", "--peers", "none")
    assert result.returncode == 2
    expected = (f"fastxent bench: --threads 2147483648: more than fastxent's limit of "
                f"{arguments.thread_limit()} threads here ({bench.usable_cpus()} CPUs available)")
    assert result.stderr.strip().splitlines() == [expected]
    assert result.stdout == ""


def test_thread_limit(capsys):
    limit = arguments.thread_limit()
    assert limit >= bench.usable_cpus()
    code, out, err = run_in_process(capsys, "--threads", f"1,{limit + 1}", "--peers", "none")
    assert (code, out) == (2, "") and len(err) == 1
    assert err[0].startswith(f"fastxent bench: --threads {limit + 1}: more than")
    # the limit itself is accepted (the plan is made; nothing is run here)
    plan = arguments.check_arguments(parse("--threads", str(limit), "--shapes", "8x3"), 1)
    assert {b.threads for b in plan} == {(limit,)}


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_output_path_checked_before_running(option, tmp_path, capsys):
    # Before: the run went through, then a traceback, the results lost.
    missing = tmp_path / "no" / "such" / "dir" / "x.out"
    code, out, err = run_in_process(capsys, "--shapes", "8x3", "--peers", "none",
                                    option, str(missing))
    assert (code, out) == (2, "")
    expected = f"fastxent bench: {option} {missing}: cannot be written (No such file or directory)"
    assert err == [expected]
    code, out, err = run_in_process(capsys, "--shapes", "8x3", "--peers", "none",
                                    option, str(tmp_path))
    assert (code, out) == (2, "")
    assert err == [f"fastxent bench: {option} {tmp_path}: is a directory, not a file"]


def test_output_path_check_writes_nothing(tmp_path):
    new, kept = tmp_path / "new.json", tmp_path / "kept.json"
    kept.write_text("earlier results")
    for path in (new, kept):
        arguments.check_arguments(parse("--shapes", "8x3", "--json", str(path)), 1)
    assert not new.exists()
    assert kept.read_text() == "earlier results"


@pytest.mark.parametrize("shapes, ops", [("1000000x1000000", "xent"),
                                         ("4Mi,99999999999999", "bce"),
                                         ("3037000500x3037000500", "xent-fwd")])
def test_shape_beyond_memory_is_one_line(shapes, ops, capsys):
    # Before: NumPy's "array is too big" or a MemoryError, as a traceback.
    code, out, err = run_in_process(capsys, "--shapes", shapes, "--ops", ops, "--peers", "none")
    assert (code, out) == (2, "") and len(err) == 1
    assert re.fullmatch(r"fastxent bench: --shapes: \S+ \S+ float32 needs about \S+ GB with "
                        r"its peers' copies; (\S+ GB available|more than this platform can "
                        r"address)", err[0]), err


def test_memory_estimate(monkeypatch):
    # 8192x1000 float32 is 32.8 MB of logits: refused with 100 MB available,
    # accepted with 10 GB; its peers' copies count.
    n = 8192 * 1000 * 4
    alone = workloads.memory_needed("xent", (8192, 1000), "float32", ())
    with_peers = workloads.memory_needed("xent", (8192, 1000), "float32", bench.PEERS)
    assert 4 * n <= alone < with_peers < 40 * n
    assert workloads.memory_needed("xent", (8192, 1000), "float32", (), 2) > alone
    monkeypatch.setattr(arguments, "available_memory", lambda: 10**8)
    with pytest.raises(arguments.ArgumentProblem, match=r"^--shapes: xent 8192x1000 float32 "):
        arguments.check_arguments(parse("--shapes", "8192x1000", "--ops", "xent"), 1)
    monkeypatch.setattr(arguments, "available_memory", lambda: 10**10)
    assert arguments.check_arguments(parse("--shapes", "8192x1000", "--ops", "xent"), 1)


# --------------------------------------------------------------------------- peers and report

def test_best_peer_and_floors_in_the_rows():
    # Hand-made samples (ms): the best peer is the quickest one of the peers,
    # not fastxent, not the NumPy reference; allocating calls go against the
    # fresh-page floor, out= and sklearn's preallocated buffers against the copy.
    w = bench.make_workload("xent", (4, 3), "float32")
    allocating = {"fastxent", "numpy-reference", "torch", "torch-compile"}
    medians = {"fastxent": 1.0, "fastxent-out": 0.8, "numpy-reference": 10.0, "torch": 6.0,
               "torch-compile": 3.0, "sklearn": 4.0, "floor": 0.5, "floor-fresh": 0.7}
    impls = {name: bench.Impl(name, None, allocates=name in allocating, threads=2)
             for name in medians}
    samples = {name: [m / 1e3 * f for f in (0.9, 1.0, 1.3)] for name, m in medians.items()}
    rows = {r["implementation"]: r for r in report.make_rows(w, 2, impls, samples)}
    for name, r in rows.items():
        assert r["best_peer"] == "torch-compile"
        assert r["speedup_vs_best_peer"] == pytest.approx(3.0 / medians[name])
        assert r["speedup_vs_torch"] == pytest.approx(6.0 / medians[name])
        floor = "floor-fresh" if name in allocating | {"floor-fresh"} else "floor"
        assert r["floor"] == floor
        assert r["ratio_to_floor"] == pytest.approx(medians[name] / medians[floor])
    table = io.StringIO()
    report.print_table(list(rows.values()), file=table)
    header = table.getvalue().splitlines()[0]
    assert "vs best peer" in header and "vs torch" in header


def test_torch_compile_agrees_and_compiles_every_workload():
    # Real compilations (seconds each): torch.compile's fwd+bwd against the
    # NumPy reference, as the bench checks before timing; and every workload
    # really compiled. Dynamo stops compiling a function after its limit of
    # recompilations (8; 1 here, to keep the test short) and runs it eagerly:
    # without new_workload() the second workload would time eager PyTorch.
    torch = pytest.importorskip("torch")
    if bench_peers.cxx_compiler() is None:
        pytest.skip("no C++ compiler: torch.compile cannot build its kernels")
    peers = bench.import_peers(names=("torch-compile",))
    assert peers.torch_compile and peers.versions() == {"torch-compile": torch.__version__}
    graphs = torch._dynamo.utils.counters["stats"]
    with torch._dynamo.config.patch(recompile_limit=1):
        for shape in ((37, 5), (29, 6)):
            peers.new_workload()
            w = bench.make_workload("xent", shape, "float32")
            impls = bench.make_implementations(w, 1, peers)
            assert impls["torch-compile"].allocates
            before = graphs["unique_graphs"]
            with bench.using_threads(1, peers.torch):
                bench.check(impls, "test")
            assert graphs["unique_graphs"] > before, f"{shape}: not compiled"


def test_markdown_table_from_the_json(tiny_run):
    # The README's table is made from the bench's JSON: one line per fastxent
    # row, with the row's numbers.
    _, json_path, _ = tiny_run
    data = json.loads(json_path.read_text())
    lines = report.markdown_table(data).splitlines()
    fast = [r for r in data["results"] if r["implementation"] in ("fastxent", "fastxent-out")]
    assert len(lines) == 2 + len(fast)
    assert lines[0].startswith("| workload | threads | fastxent |")
    for line, r in zip(lines[2:], fast):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0].startswith({"xent": "cross-entropy fwd+bwd 64 x 10 float32",
                                    "xent-fwd": "cross-entropy forward only 64 x 10 float32",
                                    "bce": "binary CE with logits fwd+bwd 64 x 10 float32"}[r["op"]])
        assert ("`out=`" in cells[0]) == (r["implementation"] == "fastxent-out")
        assert int(cells[1]) == r["threads"]
        assert float(cells[2].removesuffix(" ms")) == pytest.approx(r["median_ms"], rel=5e-3)
        assert float(cells[3].rstrip("x")) == pytest.approx(r["speedup_vs_numpy"], rel=5e-2)
        assert float(cells[6].split()[0]) == pytest.approx(r["ratio_to_floor"], abs=5e-3)
    caption = report.markdown_caption(data)
    assert caption.startswith(f"fastxent {fastxent.__version__} (")
    assert "load average" in caption and "interleaved rounds" in caption
