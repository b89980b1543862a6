"""Generic checks, written once and run over every public operation of the
registry (fastxent_testing.OPERATIONS): the compiled kernels against their
NumPy twin, thread counts and streamed stores (the same bits), out= (filled,
returned, or the input itself), memory layouts and byte orders, the same
rows as rank 1, rank 3 or with the classes on axis 0, dtype rules, empty and
complex inputs, inputs left unchanged and results of their own memory, and
the bad inputs every operation refuses alike (the wrong kind of array,
unknown reductions, bad axes, bad out=). What is specific to a family's
values (references, extremes, gradients, its own errors) stays in the
family's file."""

import inspect
import re

import numpy as np
import pytest

import fastxent
from fastxent import _config
from fastxent_testing import (
    DTYPES,
    KEEPS_HALF,
    OPERATIONS,
    Snapshot,
    array_options,
    as_tuple,
    assert_close,
    layouts,
    options_of,
    variant_options,
    result_dtype,
    selected_backend,
    with_layout,
)

OPS = [pytest.param(op, id=f"{op.name}-{op.make.__name__.lstrip('_')}") for op in OPERATIONS]
SHAPES = [(37, 11), (6, 300)]  # short rows (the tiles), long rows


@pytest.fixture
def compiled():
    """The compiled backend for the test (skipped where it is not built)."""
    with selected_backend("compiled"):
        yield _config._compiled


def parameters(op):
    return inspect.signature(op.fn).parameters


def run(op, args, options, **extra):
    return as_tuple(op.fn(*args, **options, **extra))


def assert_same_bits(got, want, what=""):
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, what
        assert g.tobytes() == w.tobytes(), what


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_compiled_matches_its_numpy_twin(compiled, rng, op, dtype, shape):
    args, kwargs = op.make(rng, shape, dtype)
    for variant, options in variant_options(op, args, kwargs):
        got = run(op, args, options)
        want = as_tuple(op.twin(*args, **options))
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, variant
            assert_close(g, w, dtype, rtols=op.rtols, err_msg=f"{variant}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_thread_count_does_not_change_a_bit(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (6000, 37), dtype)  # several blocks of rows per thread
    for variant, options in variant_options(op, args, kwargs):
        results = []
        for n in (1, 2, 3):
            with fastxent.num_threads(n):
                results.append(run(op, args, options))
        assert_same_bits(results[1], results[0], f"2 threads {variant}")
        assert_same_bits(results[2], results[0], f"3 threads {variant}")


# Streamed outputs: where an output is too large to stay in the cache, the
# compiled kernels compute each row into a scratch row and stream it out, with
# non-temporal stores, during the next row's exp sweep. The arithmetic is the
# same, so the bits must be too. The test lowers the size threshold so that
# small outputs stream, at odd row lengths and output addresses (rows that
# share cache lines, lines split between the streamed body and the normally
# stored ends): several rows per thread, row lengths that do and do not fill
# whole cache lines, and one row per thread.
STREAM_SHAPES = [(40, 301), (37, 100), (64, 333), (9, 4099), (16, 1024), (2, 700)]


def misaligned_out(shape, dtype, offset):
    """A C-contiguous output `offset` elements past a 64-byte boundary."""
    size = int(np.prod(shape))
    buffer = np.full(size + 64, np.nan, dtype=dtype)
    start = (-buffer.ctypes.data % 64) // buffer.itemsize + offset
    return buffer[start : start + size].reshape(shape)


@pytest.mark.parametrize("shape", STREAM_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_streamed_stores_give_the_same_bits(compiled, rng, op, dtype, shape):
    default = compiled.set_stream_min_bytes(1 << 62)
    if default is None:
        pytest.skip("nothing streams on this platform")
    args, kwargs = op.make(rng, shape, dtype)
    if op.name in ("softmax", "log_softmax", "logsumexp"):
        args[0][::5] = -np.inf  # rows of -inf maxima (log_softmax's scalar path)

    def both(options):
        results = run(op, args, options)
        if op.has_out:
            out = misaligned_out(shape, result_dtype(dtype), offset=3)
            results += as_tuple(op.fn(*args, **options, out=out))
        return results

    try:
        for variant, options in variant_options(op, args, kwargs):
            for n in (1, 2):
                with fastxent.num_threads(n), np.errstate(invalid="ignore"):
                    compiled.set_stream_min_bytes(1 << 62)
                    normal = both(options)
                    compiled.set_stream_min_bytes(0)
                    streamed = both(options)
                assert_same_bits(streamed, normal, f"{n} threads {variant}")
    finally:
        compiled.set_stream_min_bytes(default)


# --------------------------------------------------------------------------- forms and layouts
# The registry's problems are 2-D (rows, classes). The same rows in another
# form give the same bits: as a rank-3 batch (3, 3) with the classes on axis 1
# (a plain reshape where the operation is elementwise), with the classes on
# axis 0 (transposed), and one row alone as rank 1.

FORMS = ("rows", "rank-3 axis 1", "axis 0", "rank 1")
INPUT_LAYOUTS = ("fortran", "strided", "negative", "readonly", "broadcast", "unaligned")
OUT_LAYOUTS = ("c", "fortran", "strided", "negative")


def forms(op):
    return FORMS if "axis" in parameters(op) else ("rows", "rank-3 axis 1", "rank 1")


def form_params(ops):
    return [
        pytest.param(p.values[0], form, id=f"{p.id}-{form}")
        for p in ops
        for form in forms(p.values[0])
    ]


def reform(op, form, arr, n_rows):
    """An argument or result of a 2-D problem of n_rows rows, in `form`;
    class weights and reduced losses (not one element per row) stay."""
    if form == "rows" or np.ndim(arr) == 0 or np.shape(arr)[0] != n_rows:
        return arr
    if form == "rank 1":
        return arr[0]
    if form == "axis 0":
        return arr.T
    arr = arr.reshape((3, n_rows // 3) + arr.shape[1:])
    return np.moveaxis(arr, -1, 1) if arr.ndim == 3 and "axis" in parameters(op) else arr


def problem_in_form(op, rng, dtype, form, n_rows=9):
    """(args, kwargs, variants as (options, in-form options), results in form):
    the operation's problem of n_rows rows (1 for rank 1), in `form`, with the
    results of the 2-D call in that form too."""
    n_rows = 1 if form == "rank 1" else n_rows
    args, kwargs = op.make(rng, (n_rows, 7), dtype)
    form_args = tuple(reform(op, form, a, n_rows) for a in args)
    axis = {"rank-3 axis 1": 1, "axis 0": 0}.get(form) if "axis" in parameters(op) else None
    cases = []
    for variant in op.variants:
        if form != "rows" and "axis" in variant:
            continue
        options = options_of(args, kwargs, variant)
        want = tuple(reform(op, form, r, n_rows) for r in run(op, args, options))
        form_options = {k: reform(op, form, v, n_rows) for k, v in options.items()}
        if axis is not None:
            form_options["axis"] = axis
        cases.append((variant, form_options, want))
    return form_args, cases


def array_arguments(args, options):
    """The array arguments of a call, by position or keyword name."""
    arrays = {i: a for i, a in enumerate(args) if np.ndim(a)}
    arrays.update((k, v) for k, v in options.items() if isinstance(v, np.ndarray))
    return arrays


def replaced(args, options, change):
    """(args, options) with the arrays of `change` (by position or name) in their place."""
    return (
        tuple(change.get(i, a) for i, a in enumerate(args)),
        {k: change.get(k, v) for k, v in options.items()},
    )


def out_in_buffer(shape, dtype, layout):
    """An output array of `layout` and the whole buffer it lives in, whose
    other elements hold a sentinel that must survive."""
    if layout == "strided":
        big = np.full(tuple(2 * s + 1 for s in shape), 7.25, dtype)
        return big[tuple(slice(1, None, 2) for _ in shape)], big
    out = with_layout(np.full(shape, 7.25, dtype), layout)
    return out, out


def outside_of(out, big):
    """A mask of the buffer's elements that are not out's."""
    outside = np.zeros(big.shape, bool)
    if out.base is big:  # strided: the elements between out's
        outside[...] = True
        outside[tuple(slice(1, None, 2) for _ in big.shape)] = False
    return outside


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, form", form_params(OPS))
def test_memory_layouts_give_the_bits_of_plain_copies(backend, rng, op, form, dtype):
    """Each array argument (inputs, targets, weights) alone, all of them at
    once, and each in another layout at once: Fortran-ordered, strided, with
    negative or zero strides (broadcast), read-only or unaligned. The results
    are those of plain C-ordered copies, bit for bit, writeable; no input changes."""
    args, cases = problem_in_form(op, rng, dtype, form)
    for variant, options, want in cases:
        assert_same_bits(run(op, args, options), want, f"{form} {variant}")
        arrays = array_arguments(args, options)
        laid = {
            layout: {k: with_layout(a, layout) for k, a in arrays.items()}
            for layout in INPUT_LAYOUTS
        }
        changes = [
            (f"{k} {layout}", {k: laid[layout][k]}) for layout in INPUT_LAYOUTS for k in arrays
        ]
        changes += [(f"all {layout}", laid[layout]) for layout in INPUT_LAYOUTS]
        changes.append(
            (
                "mixed",
                {k: laid[INPUT_LAYOUTS[i % len(INPUT_LAYOUTS)]][k] for i, k in enumerate(arrays)},
            )
        )
        for where, change in changes:
            call_args, call_options = replaced(args, options, change)
            plain = {k: np.array(v) for k, v in change.items()}  # same values, C order
            want = run(op, *replaced(args, options, plain))
            snapshot = Snapshot(*call_args, *call_options.values())
            returned = op.fn(*call_args, **call_options)
            snapshot.assert_unchanged()
            where = f"{where} {variant}"
            assert_same_bits(as_tuple(returned), want, where)
            if op.has_out or op.result_index is None:
                assert np.asarray(op.result(returned)).flags.writeable, where


# (form, rows): several blocks of rows, and the forms of a small problem
OUT_PROBLEMS = [
    ("rows", 9),
    ("rows", 300),
    ("rows", 3000),
    ("rank-3 axis 1", 9),
    ("axis 0", 9),
    ("rank 1", 1),
]


@pytest.mark.parametrize("into", ["new", "input"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "op, form, n_rows",
    [
        pytest.param(p.values[0], form, n, id=f"{p.id}-{form}-{n}")
        for p in OPS
        if p.values[0].has_out
        for form, n in OUT_PROBLEMS
        if form in forms(p.values[0])
    ],
)
def test_out_is_filled_and_returned(backend, rng, op, form, n_rows, dtype, into):
    """out= in any layout, a new array (whatever it held) or the input itself,
    on two threads: it is the array returned and holds the result, and
    nothing of its buffer beside its elements is written."""
    args, cases = problem_in_form(op, rng, dtype, form, n_rows=n_rows)
    for variant, options, want in cases:
        for layout in OUT_LAYOUTS:
            out, big = out_in_buffer(args[0].shape, result_dtype(dtype), layout)
            out[...] = args[0] if into == "input" else np.nan
            call_args = (out,) + args[1:] if into == "input" else args
            before = big.copy()
            snapshot = Snapshot(*args[into == "input" :], *options.values())
            with fastxent.num_threads(2):
                returned = op.fn(*call_args, **options, out=out)
            snapshot.assert_unchanged()
            where = f"{layout} {variant}"
            assert op.result(returned) is out, where
            assert_same_bits(as_tuple(returned), want, where)
            outside = outside_of(out, big)
            assert big[outside].tobytes() == before[outside].tobytes(), where


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_inputs_are_left_unchanged(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (9, 7), dtype)
    for _, options in variant_options(op, args, kwargs):
        snapshot = Snapshot(*args, *options.values())
        run(op, args, options)
        snapshot.assert_unchanged()


@pytest.mark.parametrize("op", OPS)
def test_results_are_new_arrays(backend, rng, op):
    """No result shares memory with an input: writing to it leaves them alone."""
    args, kwargs = op.make(rng, (9, 7), np.float64)
    for variant, options in variant_options(op, args, kwargs):
        arrays = array_arguments(args, options)
        snapshot = Snapshot(*arrays.values())
        returned = op.fn(*args, **options)
        for result in returned if isinstance(returned, tuple) else (returned,):
            if isinstance(result, np.ndarray):
                assert not any(np.may_share_memory(result, a) for a in arrays.values()), variant
                result[...] = 123.0
        snapshot.assert_unchanged()


@pytest.mark.parametrize("byteorder", [">", "<"], ids=["big-endian", "little-endian"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_either_byte_order_gives_the_native_bits(backend, rng, op, dtype, byteorder):
    """Every array argument (labels too) in an explicit byte order: the results
    of native arrays, of the native dtype (as NumPy's own functions)."""
    args, kwargs = op.make(rng, (9, 7), dtype)
    for variant, options in variant_options(op, args, kwargs):
        arrays = array_arguments(args, options)
        swapped = {k: a.astype(a.dtype.newbyteorder(byteorder)) for k, a in arrays.items()}
        got = run(op, *replaced(args, options, swapped))
        assert_same_bits(got, run(op, args, options), f"{byteorder} {variant}")


@pytest.mark.parametrize("op", OPS)
def test_float16_computes_in_float32_and_integers_in_float64(backend, rng, op):
    """float16 computes in float32: the results of the float32 computation,
    rounded to float16 where the operation keeps float16 (KEEPS_HALF)."""
    args, kwargs = op.make(rng, (9, 7), np.float64)
    half = tuple(a.astype(np.float16) if a.dtype.kind == "f" else a for a in args)
    single = tuple(a.astype(np.float32) if a.dtype.kind == "f" else a for a in half)
    got = run(op, half, kwargs)
    if op.name in KEEPS_HALF:
        assert all(g.dtype == np.float16 for g in got)
        for g, want in zip(got, run(op, single, kwargs), strict=True):
            # the float32 results rounded once (a sum in another order: an ulp apart at most)
            np.testing.assert_allclose(
                g.astype(np.float32), want.astype(np.float16), rtol=2.0**-10, atol=2.0**-24
            )
        out = np.empty(args[0].shape, np.float16) if op.has_out else None
        if out is not None:
            returned = op.fn(*half, **kwargs, out=out)
            assert op.result(returned) is out
            assert_same_bits(as_tuple(returned), got, "float16 with out=")
        return
    assert all(g.dtype == np.float32 for g in got)
    assert_same_bits(got, run(op, single, kwargs), "float16 as float32")
    if op.make.__name__ in ("_labels", "_rows"):  # integer scores are meaningful
        ints = (np.round(args[0]).astype(np.int32),) + args[1:]
        got = run(op, ints, kwargs)
        assert all(g.dtype == np.float64 for g in got)
        floats = (ints[0].astype(np.float64),) + args[1:]
        assert_same_bits(got, run(op, floats, kwargs), "int32 as float64")
    if op.has_out:  # out= is then of the dtype computed in
        out = np.empty(args[0].shape, np.float32)
        returned = op.fn(*half, **kwargs, out=out)
        assert op.result(returned) is out
        assert_same_bits(as_tuple(returned), run(op, single, kwargs), "float16 with out=")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_empty_inputs_match_the_twin(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (0, 5), dtype)
    for variant, options in variant_options(op, args, kwargs):
        want = as_tuple(op.twin(*args, **options))
        # read-only among the layouts: an empty view of the input is no private copy
        for name, x in [("c", args[0]), *layouts(args[0])]:
            got = run(op, (x,) + args[1:], options)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and g.shape == w.shape, (name, variant)
                np.testing.assert_array_equal(g, w, err_msg=f"{name} {variant}")


@pytest.mark.parametrize("op", OPS)
def test_complex_input_is_a_type_error(backend, rng, op):
    args, kwargs = op.make(rng, (4, 3), np.float64)
    with pytest.raises(TypeError, match="expected an array of real numbers"):
        op.fn(args[0].astype(np.complex128), *args[1:], **kwargs)


# --------------------------------------------------------------------------- bad inputs
# Each raises the documented exception with a message naming the argument and
# the offending value or dtype, and leaves every input unchanged. The cases
# specific to one family (shapes, label ranges, keyword options of one
# function) are in test_bad_input.py's table and test_errors.py.

WRONG_KINDS = {
    "complex": (lambda a: a.astype(np.complex128), "complex128"),
    "object": (lambda a: a.astype(object), "object"),
    "str": (lambda a: np.full(a.shape, "1"), re.escape("<U1")),
    "bytes": (lambda a: np.full(a.shape, b"1"), re.escape("|S1")),
    "bool": (lambda a: a > 0.4, "bool"),
    "datetime": (lambda a: np.zeros(a.shape, "datetime64[s]"), re.escape("datetime64[s]")),
}
BAD_REDUCTIONS = ("avg", "Mean", "MEAN", None, 1, 0, True, "", "sum ", "elementwise_mean")
BAD_AXES = {
    2: ValueError,
    -3: ValueError,
    np.int64(5): ValueError,
    100: ValueError,
    10**20: ValueError,
    "1": TypeError,
    1.0: TypeError,
}


def assert_raises_naming(exc, arg, value_re, fn, *args, **kwargs):
    snapshot = Snapshot(*args, *kwargs.values())
    with np.errstate(all="ignore"), pytest.raises(exc) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert re.search(rf"(?<![\w.]){re.escape(arg)}\b", message), (arg, message)
    assert re.search(value_re, message), (value_re, message)
    snapshot.assert_unchanged()


@pytest.mark.parametrize("kind", WRONG_KINDS)
@pytest.mark.parametrize("op", OPS)
def test_wrong_kind_of_array_is_a_type_error_naming_it(backend, rng, op, kind):
    args, kwargs = op.make(rng, (4, 3), np.float64)
    names = list(parameters(op))[: len(args)]
    make_bad, dtype_re = WRONG_KINDS[kind]
    for i, name in enumerate(names):
        bad_args = args[:i] + (make_bad(args[i]),) + args[i + 1 :]
        assert_raises_naming(TypeError, name, rf"dtype {dtype_re}", op.fn, *bad_args, **kwargs)
    for name in array_options(op):
        variant = next(v for v in op.variants if name in v)
        options = options_of(args, kwargs, variant)
        options[name] = make_bad(options[name])
        assert_raises_naming(TypeError, name, rf"dtype {dtype_re}", op.fn, *args, **options)


@pytest.mark.parametrize("op", [p for p in OPS if "reduction" in parameters(p.values[0])])
def test_unknown_reduction_is_a_value_error_naming_it(backend, rng, op):
    args, kwargs = op.make(rng, (4, 3), np.float64)
    for reduction in BAD_REDUCTIONS:
        assert_raises_naming(
            ValueError, "reduction", re.escape(repr(reduction)), op.fn, *args, reduction=reduction
        )


@pytest.mark.parametrize("op", [p for p in OPS if "axis" in parameters(p.values[0])])
def test_bad_axis_is_an_error_naming_it(backend, rng, op):
    args, kwargs = op.make(rng, (4, 3), np.float64)
    for axis, exc in BAD_AXES.items():
        value_re = rf"(?<![\w-]){re.escape(repr(axis) if isinstance(axis, str) else str(axis))}"
        assert_raises_naming(exc, "axis", value_re + r"(?!\d)", op.fn, *args, axis=axis)
    for form in ("rank-3 axis 1", "rank 1"):  # one past either end of other ranks
        form_args, cases = problem_in_form(op, rng, np.float64, form)
        ndim = form_args[0].ndim
        for axis in (ndim, -ndim - 1):
            assert_raises_naming(
                ValueError, "axis", rf"(?<![\w-]){axis}(?!\d)", op.fn, *form_args, axis=axis
            )


# --------------------------------------------------------------------------- bad out=


def bad_outs(op, args, options):
    """(case, exception, patterns the message must match, args, options) for
    out= arrays the operation must refuse, the problem being (args, options)
    of float64 inputs; the message names out= and what is wrong."""
    names = list(parameters(op))[: len(args)]
    x = args[0]
    shape, rest = x.shape, args[1:]

    def case(what, exc, patterns, out, call_args=args):
        return what, exc, [r"\bout\b", *patterns], call_args, {**options, "out": out}

    for bad_shape in [shape[::-1], shape + (1,), (x.size,), (shape[0], shape[0]), (1,) + shape]:
        yield case(
            f"shape {bad_shape}", ValueError, [re.escape(str(bad_shape))], np.zeros(bad_shape)
        )
    for dtype in (np.float32, np.int64, np.complex128, np.float16):
        yield case(
            f"dtype {np.dtype(dtype)}", TypeError, [np.dtype(dtype).name], np.zeros(shape, dtype)
        )
    yield case("byte-swapped", TypeError, [], np.zeros(shape, np.dtype(np.float64).newbyteorder()))
    single = (x.astype(np.float32),) + rest
    yield case("float64 for float32", TypeError, ["float64"], np.zeros(shape), single)
    half = x.astype(np.float16)
    if op.name in KEEPS_HALF:  # results in float16: out= of float16 (the input itself too)
        yield case(
            "float32 for float16",
            TypeError,
            ["float32"],
            np.zeros(shape, np.float32),
            (half,) + rest,
        )
    else:
        yield case(
            "float16 for float16",
            TypeError,
            ["float16"],
            np.zeros(shape, np.float16),
            (half,) + rest,
        )
        yield case("float16 input itself", TypeError, [], half, (half,) + rest)
    if op.make.__name__ in ("_labels", "_rows"):  # integer scores are meaningful
        ints = np.round(x).astype(np.int64)
        yield case("int64 input itself", TypeError, [], ints, (ints,) + rest)
    read_only = np.zeros(shape)
    read_only.flags.writeable = False
    yield case("read-only", ValueError, ["read-only"], read_only)
    frozen = x.copy()
    frozen.flags.writeable = False
    yield case("read-only input itself", ValueError, ["read-only"], frozen, (frozen,) + rest)
    yield case("list", TypeError, ["list"], np.zeros(shape).tolist())
    yield case("memoryview", TypeError, ["memoryview"], memoryview(np.zeros(shape)))
    # overlapping the input without being it: shifted, reversed, transposed
    wide = np.zeros((shape[0] + 1, shape[1] + 1))
    wide[: shape[0], : shape[1]] = x
    for what, out in [
        ("shifted columns", wide[: shape[0], 1:]),
        ("shifted rows", wide[1:, : shape[1]]),
        ("reversed", None),
    ]:
        inside = wide[: shape[0], : shape[1]]
        out = inside[::-1] if out is None else out
        yield case(f"{names[0]} {what}", ValueError, ["overlaps", names[0]], out, (inside,) + rest)
    n = shape[1]  # the first n rows: a square problem, out= its input transposed
    square = x[:n].copy()
    # the options of one value per row (per-row arrays, sample_weight) cut to those rows
    square_options = {
        k: v[:n] if np.ndim(v) >= 1 and np.shape(v)[0] == shape[0] else v
        for k, v in options.items()
    }
    yield (
        f"{names[0]} transposed",
        ValueError,
        [r"\bout\b", "overlaps", names[0]],
        (square,) + tuple(a[:n] for a in rest),
        {**square_options, "out": square.T},
    )
    # overlapping another array argument: the same memory, or a part of it
    arrays = array_arguments(args, options)
    for key, a in arrays.items():
        if key == 0 or a.dtype.kind != "f":
            continue
        name = names[key] if isinstance(key, int) else key
        buffer = np.zeros(shape[:-1] + (shape[-1] + 1,))
        out = buffer[..., : shape[-1]]
        if a.shape == shape:  # the argument itself, then shifted by a column
            views = [("itself", out), ("shifted", buffer[..., 1:])]
        else:  # a row of out for a class weight, a column for a row weight
            out[...] = 1.0
            if a.ndim == 1 and a.shape[0] == shape[0] and a.shape[0] != shape[-1]:
                views = [("in out", out[:, 0])]  # one per row (sample_weight)
            else:
                views = [("in out", out[0] if a.ndim == 1 else out[:, :1])]
        for what, view in views:
            view[...] = a
            call_args, call_options = replaced(args, options, {key: view})
            yield (
                f"{name} {what}",
                ValueError,
                [r"\bout\b", "overlaps", name],
                call_args,
                {**call_options, "out": out},
            )


@pytest.mark.parametrize("op", OPS)
def test_bad_out_is_refused_naming_it(backend, rng, op):
    """out= of the wrong shape, dtype or kind, read-only, or overlapping an
    input without being the input: the documented exception naming out= and
    what is wrong; no input and no out= changed. Operations without out=: a
    TypeError."""
    args, kwargs = op.make(rng, (4, 3), np.float64)
    if not op.has_out:
        assert_raises_naming(
            TypeError, "out", "unexpected keyword", op.fn, *args, out=np.zeros((4, 3))
        )
        return
    for variant, options in variant_options(op, args, kwargs):
        for what, exc, patterns, call_args, call_options in bad_outs(op, args, options):
            snapshot = Snapshot(*call_args, *call_options.values())
            with np.errstate(all="ignore"), pytest.raises(exc) as info:
                op.fn(*call_args, **call_options)
            message = str(info.value)
            for pattern in patterns:
                assert re.search(pattern, message), (what, variant, pattern, message)
            snapshot.assert_unchanged()
