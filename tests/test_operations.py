"""Generic checks, written once and run over every public operation of the
registry (fastxent_testing.OPERATIONS): the compiled kernels against their
NumPy twin, thread counts and streamed stores (the same bits), out= (filled,
returned, or the input itself), memory layouts, dtype rules, empty and
complex inputs, inputs left unchanged. What is specific to a family's values
(references, extremes, gradients) stays in the family's file."""

import inspect
import re

import numpy as np
import pytest

import fastxent
from fastxent import _config
from fastxent_testing import (
    DTYPES,
    OPERATIONS,
    Snapshot,
    array_options,
    as_tuple,
    assert_close,
    layouts,
    options_of,
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
    for variant in op.variants:
        options = options_of(args, kwargs, variant)
        got = run(op, args, options)
        want = as_tuple(op.twin(*args, **options))
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, variant
            assert_close(g, w, dtype, rtols=op.rtols, err_msg=f"{variant}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_thread_count_does_not_change_a_bit(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (6000, 37), dtype)  # several blocks of rows per thread
    for variant in op.variants:
        options = options_of(args, kwargs, variant)
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

    def both():
        results = run(op, args, options)
        if op.has_out:
            out = misaligned_out(shape, result_dtype(dtype), offset=3)
            results += as_tuple(op.fn(*args, **options, out=out))
        return results

    try:
        for variant in op.variants:
            options = options_of(args, kwargs, variant)
            for n in (1, 2):
                with fastxent.num_threads(n), np.errstate(invalid="ignore"):
                    compiled.set_stream_min_bytes(1 << 62)
                    normal = both()
                    compiled.set_stream_min_bytes(0)
                    streamed = both()
                assert_same_bits(streamed, normal, f"{n} threads {variant}")
    finally:
        compiled.set_stream_min_bytes(default)


OUT_LAYOUTS = ("c", "fortran", "strided", "negative")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [p for p in OPS if p.values[0].has_out])
def test_out_is_filled_and_returned(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (9, 7), dtype)
    for variant in op.variants:
        options = options_of(args, kwargs, variant)
        want = run(op, args, options)
        for layout in OUT_LAYOUTS:
            out = with_layout(np.full(args[0].shape, np.nan, result_dtype(dtype)), layout)
            snapshot = Snapshot(*args, *options.values())
            returned = op.fn(*args, **options, out=out)
            snapshot.assert_unchanged()
            assert op.result(returned) is out, (layout, variant)
            assert_same_bits(as_tuple(returned), want, f"{layout} {variant}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [p for p in OPS if p.values[0].has_out])
def test_out_may_be_the_input(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (300, 257), dtype)  # several blocks of rows
    for variant in op.variants:
        options = options_of(args, kwargs, variant)
        want = run(op, args, options)
        for layout in ("c", "fortran", "strided"):
            x = with_layout(args[0].copy(), layout)  # a copy: out=x overwrites it
            returned = op.fn(x, *args[1:], **options, out=x)
            assert op.result(returned) is x, (layout, variant)
            assert_same_bits(as_tuple(returned), want, f"{layout} {variant}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_inputs_are_left_unchanged(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (9, 7), dtype)
    for variant in op.variants:
        options = options_of(args, kwargs, variant)
        snapshot = Snapshot(*args, *options.values())
        run(op, args, options)
        snapshot.assert_unchanged()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_memory_layouts_give_the_same_bits(backend, rng, op, dtype):
    """Each array argument (inputs, targets, weights) alone, and all of them
    at once, Fortran-ordered, strided, with negative strides or read-only."""
    args, kwargs = op.make(rng, (9, 7), dtype)
    for variant in op.variants:
        options = options_of(args, kwargs, variant)
        want = run(op, args, options)
        arrays = {i: a for i, a in enumerate(args) if a.ndim}  # by position or name
        arrays.update((k, v) for k, v in options.items() if isinstance(v, np.ndarray))
        for name, _ in layouts(args[0]):
            laid_out = {key: dict(layouts(a))[name] for key, a in arrays.items()}
            for which in [*arrays, "all"]:
                change = laid_out if which == "all" else {which: laid_out[which]}
                call_args = tuple(change.get(i, a) for i, a in enumerate(args))
                call_options = {k: change.get(k, v) for k, v in options.items()}
                snapshot = Snapshot(*call_args, *call_options.values())
                returned = op.fn(*call_args, **call_options)
                snapshot.assert_unchanged()
                where = f"{which} {name} {variant}"
                assert_same_bits(as_tuple(returned), want, where)
                if op.has_out or op.result_index is None:
                    assert np.asarray(op.result(returned)).flags.writeable, where


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [p for p in OPS if "axis" in parameters(p.values[0])])
def test_classes_on_axis_0_give_the_transposed_bits(backend, rng, op, dtype):
    """axis=0 on the transposed arrays (in any layout, with out= where the
    operation takes it) gives the results of axis=-1, transposed."""
    args, kwargs = op.make(rng, (9, 7), dtype)
    shape = args[0].shape

    def transposed(a):
        return a.T if np.shape(a) == shape else a

    for variant in op.variants:
        if "axis" in variant:
            continue
        options = options_of(args, kwargs, variant)
        want = [transposed(w) for w in run(op, args, options)]
        call_args = [transposed(a) for a in args]
        call_options = {k: transposed(v) for k, v in options.items()}
        arrays = {i: a for i, a in enumerate(call_args) if a.ndim}
        arrays.update((k, v) for k, v in call_options.items() if isinstance(v, np.ndarray))
        # every array argument in the layout at once (the first one: transposed)
        for name in ["c", *dict(layouts(args[0]))]:
            laid_out = {
                key: np.ascontiguousarray(a) if name == "c" else dict(layouts(a))[name]
                for key, a in arrays.items()
            }
            name_args = tuple(laid_out.get(i, a) for i, a in enumerate(call_args))
            name_options = {k: laid_out.get(k, v) for k, v in call_options.items()}
            returned = op.fn(*name_args, **name_options, axis=0)
            assert_same_bits(as_tuple(returned), want, f"{name} {variant}")
            if op.has_out or op.result_index is None:
                assert np.asarray(op.result(returned)).flags.writeable, (name, variant)
        if op.has_out:
            for layout in OUT_LAYOUTS:
                out = with_layout(np.full(call_args[0].shape, np.nan, result_dtype(dtype)), layout)
                returned = op.fn(*call_args, **call_options, axis=0, out=out)
                assert op.result(returned) is out, (layout, variant)
                assert_same_bits(as_tuple(returned), want, f"out {layout} {variant}")


@pytest.mark.parametrize("op", OPS)
def test_float16_computes_in_float32_and_integers_in_float64(backend, rng, op):
    args, kwargs = op.make(rng, (9, 7), np.float64)
    half = tuple(a.astype(np.float16) if a.dtype.kind == "f" else a for a in args)
    single = tuple(a.astype(np.float32) if a.dtype.kind == "f" else a for a in half)
    got = run(op, half, kwargs)
    assert all(g.dtype == np.float32 for g in got)
    assert_same_bits(got, run(op, single, kwargs), "float16 as float32")
    if op.make.__name__ in ("_labels", "_rows"):  # integer scores are meaningful
        ints = (np.round(args[0]).astype(np.int32),) + args[1:]
        got = run(op, ints, kwargs)
        assert all(g.dtype == np.float64 for g in got)
        floats = (ints[0].astype(np.float64),) + args[1:]
        assert_same_bits(got, run(op, floats, kwargs), "int32 as float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_empty_inputs_match_the_twin(backend, rng, op, dtype):
    args, kwargs = op.make(rng, (0, 5), dtype)
    for variant in op.variants:
        options = options_of(args, kwargs, variant)
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
# specific to one family (shapes, label ranges, out=, keyword options of one
# function) are in test_bad_input.py's table.

WRONG_KINDS = {
    "complex": (lambda a: a.astype(np.complex128), "complex128"),
    "object": (lambda a: a.astype(object), "object"),
    "str": (lambda a: np.full(a.shape, "1"), re.escape("<U1")),
    "bool": (lambda a: a > 0.4, "bool"),
}
BAD_REDUCTIONS = ("avg", "Mean", "MEAN", None, 1, "", "sum ")
BAD_AXES = {
    2: ValueError,
    -3: ValueError,
    np.int64(5): ValueError,
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
