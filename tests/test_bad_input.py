"""A bad-input battery for every public function (cross_entropy's own error
cases live in test_errors.py and are not repeated here).

Three tests, each table-driven:

* ``test_bad_input_raises``: one bad argument per case (the wrong kind of
  array, lists and scalars NumPy cannot make real, 0-d inputs, wrong ranks,
  targets of the wrong shape, labels out of range or not whole, NaN and
  infinity in targets, weights of the wrong length, unknown reductions, axes
  out of range, label smoothing outside [0, 1], out= of the Keras and
  scikit-learn functions; what every public operation refuses alike is
  checked over the registry in test_operations.py). Each raises the
  exception API.md documents, with a message that names the argument and the
  offending value, shape or dtype, and leaves every input unchanged.
* ``test_lists_and_scalars_convert_as_numpy``: Python lists and scalars that
  NumPy converts to real arrays give exactly the result of those arrays.
* ``test_risky_in_subprocess``: inputs that could crash a C kernel (huge
  shapes, out= aliasing, non-contiguous out=, read-only memory maps, extreme
  strides, object arrays holding arrays) run in a child interpreter, which
  must exit with status 0 (every check passed, every expected exception
  caught), never by a signal.

Each runs once per backend. The number of bad inputs tried is the number of
cases of each test:

    pytest --collect-only -q tests/test_bad_input.py | grep -c 'test_bad_input_raises\\[compiled'
"""

import os
import re
import subprocess
import sys
import textwrap
from typing import Any, NamedTuple

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax

import fastxent
from fastxent import keras as fk
from fastxent import sklearn as fsk

from fastxent_testing import Snapshot

# --------------------------------------------------------------------------- good inputs

LOGITS = np.linspace(-2.0, 2.0, 12).reshape(4, 3)
LOG_PROBS = scipy_log_softmax(LOGITS, axis=-1)
LABELS = np.array([0, 2, 1, 2])
PROBS = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3], [0.1, 0.1, 0.8]])
Q_PROBS = np.array([[0.3, 0.3, 0.4], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]])
BIN_PROBS = np.array([[0.1, 0.5, 0.9], [0.25, 0.75, 0.5], [0.01, 0.99, 0.3], [0.6, 0.4, 0.2]])
BIN_TARGET = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0], [0.0, 1.0, 0.25], [1.0, 1.0, 0.0]])
ONE_HOT = np.eye(3)[LABELS]
WEIGHT = np.array([0.5, 1.0, 2.0])

# Each public function, the names of its positional arguments, and good values
# of every argument a case may replace.
FUNCTIONS = {
    "cross_entropy": (fastxent.cross_entropy, ("logits", "target"),
                      dict(logits=LOGITS, target=LABELS)),
    "nll_loss": (fastxent.nll_loss, ("log_probs", "target"),
                 dict(log_probs=LOG_PROBS, target=LABELS)),
    "nll_loss_with_grad": (fastxent.nll_loss_with_grad, ("log_probs", "target"),
                           dict(log_probs=LOG_PROBS, target=LABELS)),
    "bce_logits": (fastxent.binary_cross_entropy_with_logits, ("logits", "target"),
                   dict(logits=LOGITS, target=BIN_TARGET)),
    "bce_logits_with_grad": (fastxent.binary_cross_entropy_with_logits_with_grad,
                             ("logits", "target"), dict(logits=LOGITS, target=BIN_TARGET)),
    "bce": (fastxent.binary_cross_entropy, ("probs", "target"),
            dict(probs=BIN_PROBS, target=BIN_TARGET)),
    "bce_with_grad": (fastxent.binary_cross_entropy_with_grad, ("probs", "target"),
                      dict(probs=BIN_PROBS, target=BIN_TARGET)),
    "softmax": (fastxent.softmax, ("x",), dict(x=LOGITS)),
    "log_softmax": (fastxent.log_softmax, ("x",), dict(x=LOGITS)),
    "logsumexp": (fastxent.logsumexp, ("x",), dict(x=LOGITS)),
    "entropy": (fastxent.entropy, ("p",), dict(p=PROBS)),
    "kl_divergence": (fastxent.kl_divergence, ("p", "q"), dict(p=PROBS, q=Q_PROBS)),
    "keras.binary_crossentropy": (fk.binary_crossentropy, ("y_true", "y_pred"),
                                  dict(y_true=BIN_TARGET, y_pred=BIN_PROBS)),
    "keras.categorical_crossentropy": (fk.categorical_crossentropy, ("y_true", "y_pred"),
                                       dict(y_true=ONE_HOT, y_pred=PROBS)),
    "keras.sparse_categorical_crossentropy": (fk.sparse_categorical_crossentropy,
                                              ("y_true", "y_pred"),
                                              dict(y_true=LABELS, y_pred=PROBS)),
    "sklearn.log_loss": (fsk.log_loss, ("y_true", "y_proba"),
                         dict(y_true=LABELS, y_proba=PROBS)),
}
BINARY = ["bce_logits", "bce_logits_with_grad", "bce", "bce_with_grad"]
NLL = ["nll_loss", "nll_loss_with_grad"]


# --------------------------------------------------------------------------- the table


class Bad(NamedTuple):
    function: str  # a key of FUNCTIONS
    replace: dict  # argument name -> bad value; the others stay good
    exc: type
    arg: str  # the argument the message must name
    value: str  # a regex for the offending value, shape or dtype in the message
    id: str

    def call_args(self):
        """(function, positional args, keyword args): fresh copies of the good
        inputs with the case's bad values in place."""
        fn, positional, good = FUNCTIONS[self.function]
        values = {name: _copy(v) for name, v in good.items()}
        values.update((name, _copy(value)) for name, value in self.replace.items())
        args = tuple(values.pop(name) for name in positional)
        return fn, args, values


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value


def shape_re(shape):
    return re.escape(str(tuple(shape)))


CASES = []


def bad(function, exc, arg, value, id, **replace):
    CASES.append(Bad(function, replace, exc, arg, value, id))


# ---- the wrong kind of array: TypeError naming the argument and the dtype

WRONG_KINDS = {
    "complex": (lambda a: np.asarray(a).astype(np.complex128), "complex128"),
    "object": (lambda a: np.asarray(a).astype(object), "object"),
    "str": (lambda a: np.full(np.shape(a), "1"), re.escape("<U1")),
    "bool": (lambda a: np.asarray(a) > 0.4, "bool"),
}
# function -> the array arguments that must refuse each kind (where the API
# accepts a kind, e.g. bool or string labels, it is left out)
KIND_ARGS = {
    # the public operations' arrays and weights: test_operations.py, over the registry
    # Keras casts bool targets and labels to numbers, as Keras does
    "keras.binary_crossentropy": {"y_true": "complex object str",
                                  "y_pred": "complex object str bool"},
    "keras.categorical_crossentropy": {"y_true": "complex object str",
                                       "y_pred": "complex object str bool"},
    "keras.sparse_categorical_crossentropy": {"y_true": "complex object str",
                                              "y_pred": "complex object str bool"},
    # scikit-learn: labels may be strings or objects, and 0/1 bool probabilities are numbers
    "sklearn.log_loss": {"y_true": "complex", "y_proba": "complex object str",
                         "sample_weight": "complex object str"},
}
for _name, _args in KIND_ARGS.items():
    _good = dict(FUNCTIONS[_name][2], weight=WEIGHT, pos_weight=WEIGHT,
                 sample_weight=np.ones(len(LABELS)))
    if _name in ("bce_logits", "bce"):
        _good.update(weight=np.ones((4, 3)), pos_weight=np.ones(3))
    for _fn in [_name] + ([_name + "_with_grad"] if _name in ("nll_loss", "bce_logits", "bce")
                          else []):
        for _arg, _kinds in _args.items():
            for _kind in _kinds.split():
                _make, _dtype_re = WRONG_KINDS[_kind]
                bad(_fn, TypeError, _arg, rf"dtype {_dtype_re}", f"{_fn}-{_arg}-{_kind}",
                    **{_arg: _make(_good[_arg])})

# ---- Python lists and scalars that NumPy cannot make real

RAGGED = [[0.1, 0.2, 0.7], [0.5, 0.5]]
for _fn, _arg in [("nll_loss", "log_probs"), ("bce_logits", "logits"), ("bce", "probs"),
                  ("softmax", "x"), ("logsumexp", "x"), ("entropy", "p"), ("kl_divergence", "q"),
                  ("keras.categorical_crossentropy", "y_pred"), ("sklearn.log_loss", "y_proba")]:
    bad(_fn, TypeError, _arg, "convert", f"{_fn}-{_arg}-ragged-list", **{_arg: RAGGED})
bad("nll_loss", TypeError, "target", "object", "nll-target-None", target=None)
bad("nll_loss", TypeError, "target", re.escape("<U"), "nll-target-list-of-str",
    target=["0", "2", "1", "2"])
bad("nll_loss_with_grad", TypeError, "target", "object", "nll-target-list-with-None",
    target=[0, None, 1, 2])
bad("bce_logits", TypeError, "pos_weight", "complex128", "bce_logits-pos_weight-python-complex",
    pos_weight=1j)
bad("bce", TypeError, "weight", "object", "bce-weight-dict", weight={"a": 1.0})
bad("bce_logits_with_grad", TypeError, "logits", re.escape("<U"), "bce_logits-logits-str-scalar",
    logits="0.5", target=np.float64(1.0))
bad("softmax", TypeError, "x", "object", "softmax-list-with-None", x=[1.0, None, 2.0])
bad("log_softmax", TypeError, "x", "complex128", "log_softmax-list-of-complex",
    x=[1.0, 2j, 3.0])
bad("kl_divergence", TypeError, "p", re.escape("<U"), "kl-p-list-of-str", p=["a", "b", "c"])
bad("keras.sparse_categorical_crossentropy", TypeError, "y_true", "object",
    "keras-sparse-y_true-list-with-None", y_true=[0, None, 1, 2])
bad("cross_entropy", TypeError, "target", "object", "ce-target-None", target=None)
bad("cross_entropy", TypeError, "ignore_index", "'a'", "ce-ignore_index-str", ignore_index="a")
bad("cross_entropy", TypeError, "ignore_index", r"1\.5", "ce-ignore_index-float",
    ignore_index=1.5)
bad("cross_entropy", TypeError, "label_smoothing", "'x'", "ce-label_smoothing-str",
    label_smoothing="x")
bad("cross_entropy", TypeError, "weight", "complex128", "ce-weight-python-list-complex",
    weight=[1.0, 1j, 1.0])

# ---- 0-d inputs where a class axis is needed (the building blocks take 0-d
# inputs as SciPy does: tests/test_scipy_parity.py)

for _fn, _arg in [("nll_loss", "log_probs")]:
    bad(_fn, ValueError, _arg, "0-d", f"{_fn}-0d-{_arg}", **{_arg: np.float64(0.5)})
    bad(_fn, ValueError, _arg, "0-d", f"{_fn}-python-scalar-{_arg}", **{_arg: 0.5})
bad("nll_loss", ValueError, "target", r"got \(\)", "nll-0d-target-for-2d-log_probs",
    target=np.array(1))
bad("nll_loss_with_grad", ValueError, "weight", r"got \(\)", "nll-0d-weight",
    weight=np.float64(1.0))
bad("cross_entropy", ValueError, "target", r"got \(\)", "ce-0d-target-for-2d-logits",
    target=np.array(1))
bad("keras.categorical_crossentropy", ValueError, "y_pred", "0-d", "keras-cat-0d-y_pred",
    y_pred=np.float64(0.5), y_true=np.float64(1.0))
bad("keras.sparse_categorical_crossentropy", ValueError, "y_pred", "0-d",
    "keras-sparse-0d-y_pred", y_pred=np.float64(0.5), y_true=np.array(0))
bad("sklearn.log_loss", ValueError, "y_proba", r"shape \(\)", "sklearn-0d-y_proba",
    y_proba=np.float64(0.5))
bad("sklearn.log_loss", ValueError, "y_true", r"\b1\b", "sklearn-0d-y_true", y_true=np.int64(1))

# ---- wrong ranks and target shapes that do not match

for _fn in NLL:
    bad(_fn, ValueError, "target", "got " + shape_re((4, 3)), f"{_fn}-target-rank2",
        target=np.zeros((4, 3), np.int64))
    bad(_fn, ValueError, "target", shape_re((2, 2)), f"{_fn}-target-2x2",
        target=np.zeros((2, 2), np.int64))
    bad(_fn, ValueError, "target", shape_re((3,)), f"{_fn}-target-short",
        target=np.zeros(3, np.int64))
    bad(_fn, ValueError, "target", shape_re((4,)), f"{_fn}-target-for-3d-log_probs",
        log_probs=np.zeros((4, 3, 2)), target=np.zeros(4, np.int64))
for _fn in BINARY:
    bad(_fn, ValueError, "target", shape_re((4, 3, 1)), f"{_fn}-target-rank3",
        target=np.zeros((4, 3, 1)))
    bad(_fn, ValueError, "target", shape_re((12,)), f"{_fn}-target-flat", target=np.zeros(12))
    bad(_fn, ValueError, "target", shape_re(()), f"{_fn}-target-0d", target=np.float64(1.0))
    bad(_fn, ValueError, "target", shape_re((3, 4)), f"{_fn}-target-transposed",
        target=np.zeros((3, 4)))
bad("kl_divergence", ValueError, "q", shape_re((4, 3, 1)), "kl-q-does-not-broadcast",
    q=np.ones((4, 3, 1)))
bad("kl_divergence", ValueError, "q", shape_re((3, 3)), "kl-q-rows-do-not-broadcast",
    q=np.ones((3, 3)))
bad("keras.binary_crossentropy", ValueError, "y_true", shape_re((4,)), "keras-bin-y_true-rank1",
    y_true=np.zeros(4))
bad("keras.categorical_crossentropy", ValueError, "y_true", shape_re((4, 3, 1)),
    "keras-cat-y_true-rank3", y_true=np.zeros((4, 3, 1)))
bad("keras.sparse_categorical_crossentropy", ValueError, "y_true", shape_re((4, 3)),
    "keras-sparse-y_true-rank2", y_true=np.zeros((4, 3), np.int64))
bad("keras.sparse_categorical_crossentropy", ValueError, "y_true", shape_re((4, 2)),
    "keras-sparse-y_true-(4,2)", y_true=np.zeros((4, 2), np.int64))
bad("sklearn.log_loss", ValueError, "y_proba", shape_re((4, 3, 1)), "sklearn-y_proba-rank3",
    y_proba=PROBS[..., None])
bad("sklearn.log_loss", ValueError, "y_true", shape_re((4, 1, 1)), "sklearn-y_true-rank3",
    y_true=LABELS.reshape(4, 1, 1))
bad("sklearn.log_loss", ValueError, "y_proba", r"\[3, 4\]", "sklearn-fewer-predictions",
    y_proba=PROBS[:3])

# ---- class labels out of range, negative, or not whole numbers

for _fn in NLL:
    bad(_fn, IndexError, "target", r"label 3 at position \(1,\)", f"{_fn}-label-C",
        target=np.array([0, 3, 1, 2]))
    bad(_fn, IndexError, "target", r"label -1 at position \(3,\)", f"{_fn}-label-negative",
        target=np.array([0, 1, 2, -1]))
    bad(_fn, IndexError, "target", r"label -9223372036854775808 at position \(0,\)",
        f"{_fn}-label-int64-min", target=np.array([np.iinfo(np.int64).min, 0, 1, 2]))
    bad(_fn, IndexError, "target", r"label 9223372036854775807 at position \(2,\)",
        f"{_fn}-label-int64-max", target=np.array([0, 1, np.iinfo(np.int64).max, 2]))
    bad(_fn, IndexError, "target", r"18446744073709551615", f"{_fn}-label-uint64-max",
        target=np.array([0, 1, 2, 2**64 - 1], np.uint64))
    bad(_fn, IndexError, "target", r"label -100 at position \(2,\)",
        f"{_fn}-label--100-not-ignored", target=np.array([0, 1, -100, 2]), ignore_index=0)
    bad(_fn, IndexError, "target", r"label 4 at position \(1, 2\)", f"{_fn}-label-position-2d",
        log_probs=np.zeros((2, 4, 3)), target=np.array([[0, 1, 2], [3, 0, 4]]), axis=1)
    bad(_fn, TypeError, "target", "float64", f"{_fn}-label-non-integral-float",
        target=np.array([0.0, 1.5, 1.0, 2.0]))
    bad(_fn, TypeError, "target", "float32", f"{_fn}-label-integral-float32",
        target=np.array([0, 1, 1, 2], np.float32))
bad("keras.sparse_categorical_crossentropy", ValueError, "y_true", r"got inf at position \(2,\)",
    "keras-sparse-label-inf", y_true=np.array([0.0, 1.0, np.inf, 2.0]))
bad("keras.sparse_categorical_crossentropy", ValueError, "y_true", r"got -inf at position \(0,\)",
    "keras-sparse-label--inf", y_true=np.array([-np.inf, 1.0, 1.0, 2.0]))
bad("keras.sparse_categorical_crossentropy", ValueError, "y_true", r"got 2\.5 at position \(3,\)",
    "keras-sparse-label-2.5-from-logits", y_true=np.array([0.0, 1.0, 1.0, 2.5]),
    from_logits=True)
bad("keras.sparse_categorical_crossentropy", IndexError, "y_true", r"label 3(\.0)? at position",
    "keras-sparse-label-3.0", y_true=np.array([0.0, 3.0, 1.0, 2.0]))
bad("keras.sparse_categorical_crossentropy", IndexError, "y_true", "18446744073709551615",
    "keras-sparse-label-uint64-max", y_true=np.array([0, 1, 2**64 - 1, 2], np.uint64))
bad("sklearn.log_loss", ValueError, "y_true", r"0\.5", "sklearn-y_true-non-integral",
    y_true=np.array([0.0, 0.5, 1.0, 2.0]))
bad("sklearn.log_loss", ValueError, "labels", r"0\.5", "sklearn-labels-non-integral",
    labels=[0.0, 0.5, 2.0])
bad("sklearn.log_loss", ValueError, "y_true", r"\[5\]", "sklearn-y_true-not-in-labels",
    y_true=np.array([0, 5, 1, 2]), labels=[0, 1, 2])

# ---- NaN and infinity in targets, probabilities and weights

for _fn in ("bce", "bce_with_grad"):
    # PyTorch: "all elements of target should be between 0 and 1"
    for _value, _re in [(1.5, r"1\.5"), (-0.5, r"-0\.5"), (np.inf, r"\binf"),
                        (-np.inf, r"-inf")]:
        _t = BIN_TARGET.copy()
        _t[1, 2] = _value
        bad(_fn, ValueError, "target", _re, f"{_fn}-target-{_value}", target=_t)
for _value, _re in [(np.nan, "NaN"), (np.inf, "infinity")]:
    bad("sklearn.log_loss", ValueError, "y_proba", _re, f"sklearn-y_proba-{_value}",
        y_proba=np.where(np.eye(4, 3) > 0, _value, PROBS))
    bad("sklearn.log_loss", ValueError, "sample_weight", _re, f"sklearn-sample_weight-{_value}",
        sample_weight=np.array([1.0, _value, 1.0, 1.0]))
bad("sklearn.log_loss", ValueError, "y_true", "NaN", "sklearn-y_true-nan",
    y_true=np.array([0.0, np.nan, 1.0, 2.0]))
bad("sklearn.log_loss", ValueError, "y_proba", r"-0\.1", "sklearn-y_proba-negative",
    y_proba=np.where(np.eye(4, 3) > 0, -0.1, PROBS))

# ---- weights of the wrong length or shape

for _fn in NLL:
    for _w in (np.ones(2), np.ones(4), np.ones((1, 3)), [1.0, 2.0]):
        bad(_fn, ValueError, "weight", shape_re(np.shape(_w)),
            f"{_fn}-weight-{np.shape(_w)}{'-list' if isinstance(_w, list) else ''}", weight=_w)
for _fn in BINARY:
    for _shape in [(2,), (4,), (4, 1, 3), (5, 3), (4, 2)]:
        bad(_fn, ValueError, "weight", shape_re(_shape), f"{_fn}-weight-{_shape}",
            weight=np.ones(_shape))
for _fn in ("bce_logits", "bce_logits_with_grad"):
    for _shape in [(2,), (2, 4, 3), (3, 3)]:
        bad(_fn, ValueError, "pos_weight", shape_re(_shape), f"{_fn}-pos_weight-{_shape}",
            pos_weight=np.ones(_shape))
bad("sklearn.log_loss", ValueError, "sample_weight", r"\[4, 4, 3\]", "sklearn-sample_weight-short",
    sample_weight=np.ones(3))

# ---- unknown reduction, axis out of range (or not an integer): for the public
# operations, test_operations.py over every registry entry

for _fn in ["keras.binary_crossentropy", "keras.categorical_crossentropy",
            "keras.sparse_categorical_crossentropy"]:
    for _axis in (2, -3, np.int64(5), 10**20):
        bad(_fn, ValueError, "axis", rf"(?<![\w-]){re.escape(str(_axis))}(?!\d)",
            f"{_fn}-axis-{_axis}", axis=_axis)
    bad(_fn, TypeError, "axis", "'1'", f"{_fn}-axis-str", axis="1")
    bad(_fn, TypeError, "axis", r"1\.0", f"{_fn}-axis-float", axis=1.0)

# ---- label smoothing outside [0, 1], and other bad options

for _fn in ("keras.binary_crossentropy", "keras.categorical_crossentropy"):
    for _ls in (-0.1, 1.5, np.nan, np.inf, -np.inf):
        bad(_fn, ValueError, "label_smoothing", re.escape(repr(_ls)),
            f"{_fn}-label_smoothing-{_ls}", label_smoothing=_ls)
    bad(_fn, TypeError, "label_smoothing", "'x'", f"{_fn}-label_smoothing-str",
        label_smoothing="x")
bad("keras.sparse_categorical_crossentropy", TypeError, "label_smoothing", "unexpected keyword",
    "keras-sparse-has-no-label_smoothing", label_smoothing=0.1)
bad("keras.sparse_categorical_crossentropy", TypeError, "ignore_class", "'a'",
    "keras-sparse-ignore_class-str", ignore_class="a")
bad("keras.sparse_categorical_crossentropy", ValueError, "ignore_class", "18446744073709551616",
    "keras-sparse-ignore_class-beyond-int64", ignore_class=2**64)
for _fn in NLL:
    bad(_fn, TypeError, "ignore_index", r"1\.5", f"{_fn}-ignore_index-float", ignore_index=1.5)
    bad(_fn, TypeError, "ignore_index", "None", f"{_fn}-ignore_index-None", ignore_index=None)
    bad(_fn, TypeError, "label_smoothing", "unexpected keyword", f"{_fn}-no-label_smoothing",
        label_smoothing=0.1)
for _fn in ("entropy", "kl_divergence"):
    bad(_fn, TypeError, "base", "'e'", f"{_fn}-base-str", base="e")
    bad(_fn, ValueError, "base", r"-2\.0", f"{_fn}-base-negative", base=-2)
bad("bce", TypeError, "pos_weight", "unexpected keyword", "bce-no-pos_weight", pos_weight=2.0)

# ---- out=: the public operations' bad out= arrays are checked over the registry
# (test_operations.py); the Keras and scikit-learn functions take none

for _fn in ("keras.binary_crossentropy", "keras.categorical_crossentropy",
            "keras.sparse_categorical_crossentropy", "sklearn.log_loss"):
    bad(_fn, TypeError, "out", "unexpected keyword", f"{_fn}-takes-no-out",
        out=np.zeros((4, 3)))


def _dedupe_ids(cases):
    seen = {}
    for case in cases:
        n = seen.get(case.id, 0)
        seen[case.id] = n + 1
        yield pytest.param(case, id=case.id if n == 0 else f"{case.id}#{n}")


@pytest.mark.parametrize("case", list(_dedupe_ids(CASES)))
def test_bad_input_raises(backend, case):
    fn, args, kwargs = case.call_args()
    snapshot = Snapshot(*args, *kwargs.values())
    with np.errstate(all="ignore"), pytest.raises(case.exc) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert re.search(rf"(?<![\w.]){re.escape(case.arg)}\b", message), \
        f"the message does not name {case.arg!r}: {message!r}"
    assert re.search(case.value, message), \
        f"the message does not give the offending value {case.value!r}: {message!r}"
    snapshot.assert_unchanged()


# --------------------------------------------------------------------------- accepted


class Accepted(NamedTuple):
    function: str
    args: tuple  # as the user passes them: lists, Python scalars
    kwargs: dict
    dtype: Any  # the dtype of the result (None: a Python float)
    id: str


OPTIONS = ("axis", "ignore_index", "reduction", "label_smoothing", "base", "ignore_class",
           "from_logits", "normalize", "labels")


def _canonical(values):
    """The same arguments as NumPy arrays (what fastxent must convert lists and
    scalars to), and options as plain Python values."""
    out = {}
    for name, v in values.items():
        if name in OPTIONS:
            out[name] = v.item() if isinstance(v, np.generic) else v
        elif isinstance(v, (list, tuple, int, float, np.generic)):
            out[name] = np.asarray(v)
        else:
            out[name] = v
    return out


ACCEPTED = [
    Accepted("nll_loss", (LOG_PROBS.tolist(), LABELS.tolist()), {}, np.float64, "nll-lists"),
    Accepted("nll_loss_with_grad", (LOG_PROBS[0].tolist(), 2), dict(reduction="sum"), np.float64,
             "nll-1d-list-and-int"),
    Accepted("nll_loss", (LOG_PROBS, LABELS), dict(weight=[1, 2, 3], ignore_index=np.int8(2)),
             np.float64, "nll-int-list-weight"),
    Accepted("nll_loss", (LOG_PROBS.astype(np.float16), LABELS.astype(np.uint8)),
             dict(reduction=np.str_("none")), np.float16, "nll-float16-uint8-np.str_"),
    Accepted("bce_logits", (0.5, 1), {}, np.float64, "bce_logits-python-scalars"),
    Accepted("bce_logits", (LOGITS.tolist(), BIN_TARGET.tolist()),
             dict(pos_weight=2, weight=[1, 2, 3], reduction="none"), np.float64,
             "bce_logits-lists-int-weights"),
    Accepted("bce_logits_with_grad", ([[-3, 0, 5]], [[0, 1, 1]]), {}, np.float64,
             "bce_logits-int-lists"),
    Accepted("bce", ([0.25, 0.5], [0, 1]), {}, np.float64, "bce-lists"),
    Accepted("bce_with_grad", (BIN_PROBS.tolist(), BIN_TARGET), dict(weight=0.5), np.float64,
             "bce-list-scalar-weight"),
    Accepted("softmax", ([1, 2, 3],), {}, np.float64, "softmax-int-list"),
    Accepted("log_softmax", (LOGITS.tolist(),), dict(axis=np.int64(0)), np.float64,
             "log_softmax-list-np-axis"),
    Accepted("logsumexp", ([[1, 2], [3, 4]],), {}, np.float64, "logsumexp-int-lists"),
    Accepted("logsumexp", ([1000.0, 1000.0],), {}, np.float64, "logsumexp-list-to-scalar"),
    Accepted("entropy", ([0.5, 0.25, 0.25],), dict(base=2), np.float64, "entropy-list-int-base"),
    Accepted("kl_divergence", ([0.5, 0.5], 0.5), {}, np.float64, "kl-list-and-scalar"),
    Accepted("kl_divergence", (PROBS.tolist(), Q_PROBS.tolist()), dict(base=np.float32(10)),
             np.float64, "kl-lists-np-base"),
    Accepted("keras.sparse_categorical_crossentropy", ([0, 2], [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]),
             {}, np.float64, "keras-sparse-lists"),
    Accepted("keras.binary_crossentropy", ([[0, 1]], [[0.2, 0.7]]), dict(label_smoothing=0),
             np.float64, "keras-binary-lists"),
    Accepted("keras.categorical_crossentropy", ([[0, 1, 0]], [[1, 2, 3]]),
             dict(from_logits=True), np.float64, "keras-cat-int-logits"),
    Accepted("sklearn.log_loss", (["a", "b", "a"], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), {},
             None, "sklearn-string-labels"),
    Accepted("sklearn.log_loss", ([0, 1, 1], [0.2, 0.7, 0.9]), dict(sample_weight=[1, 2, 3]),
             None, "sklearn-lists"),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_lists_and_scalars_convert_as_numpy(backend, case):
    fn, positional, _ = FUNCTIONS[case.function]
    snapshot = Snapshot(*case.args, *case.kwargs.values())
    got = fn(*case.args, **case.kwargs)
    snapshot.assert_unchanged()
    arrays = _canonical(dict(zip(positional, case.args)) | case.kwargs)
    want = fn(*[arrays.pop(name) for name in positional], **arrays)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        if case.dtype is None:
            assert type(g) is float and g == w
        else:
            assert isinstance(g, (np.ndarray, np.generic)), type(g)
            assert g.dtype == case.dtype, (g.dtype, case.dtype)
            assert np.shape(g) == np.shape(w)
            assert np.asarray(g).tobytes() == np.asarray(w).tobytes(), (g, w)
        assert np.all(np.isfinite(g))


# --------------------------------------------------------------------------- in a subprocess

# Run in a child interpreter (with faulthandler, so that a crash shows where).
# Its helpers: expect() asserts the exception, its message and that no input
# (nor out=) was modified; same() compares two results bit for bit.
PRELUDE = r'''
import re, sys
import numpy as np
import fastxent
from fastxent import keras as fk, sklearn as fsk
fastxent.set_backend(sys.argv[1])
TMP = sys.argv[2]
CHECKS = 0

def _arrays(values):
    # (huge zero-stride views are not copied: nothing can write into them)
    return [(a, a.copy()) for a in values if isinstance(a, np.ndarray) and a.nbytes < 2**30]

def unchanged(saved):
    for a, before in saved:
        assert a.tobytes() == before.tobytes(), "an input was modified"

def expect(exc, patterns, fn, *args, **kwargs):
    global CHECKS
    saved = _arrays(args + tuple(kwargs.values()))
    try:
        fn(*args, **kwargs)
    except exc as e:
        for p in [patterns] if isinstance(patterns, str) else patterns:
            assert re.search(p, str(e)), (p, str(e))
    else:
        raise AssertionError(f"{getattr(fn, '__name__', fn)}: no {exc}")
    unchanged(saved)
    CHECKS += 1

def same(got, want):
    global CHECKS
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        assert np.shape(g) == np.shape(w) and np.asarray(g).dtype == np.asarray(w).dtype
        assert np.asarray(g).tobytes() == np.asarray(w).tobytes(), (g, w)
    CHECKS += 1

L = np.array([0, 2, 1, 2])
X = np.linspace(-2.0, 2.0, 12).reshape(4, 3)
P = np.array([[0.1, 0.5, 0.9], [0.25, 0.75, 0.5], [0.01, 0.99, 0.3], [0.6, 0.4, 0.2]])
T = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0], [0.0, 1.0, 0.25], [1.0, 1.0, 0.0]])
# (name, function, positional inputs, keyword inputs) of every function with out=
WITH_OUT = [
    ("ce", fastxent.cross_entropy_with_grad, (X, L), {}),
    ("nll", fastxent.nll_loss_with_grad, (X, L), {"weight": np.array([1.0, 2.0, 0.5])}),
    ("bcel", fastxent.binary_cross_entropy_with_logits_with_grad, (X, T),
     {"weight": np.full((4, 3), 0.5), "pos_weight": np.array([1.0, 2.0, 0.5])}),
    ("bce", fastxent.binary_cross_entropy_with_grad, (P, T), {"weight": np.full((4, 3), 0.5)}),
    ("softmax", fastxent.softmax, (X,), {}),
    ("log_softmax", fastxent.log_softmax, (X,), {}),
]
'''

EPILOGUE = r'''
assert CHECKS > 0, "the scenario checked nothing"
sys.exit(0)
'''

SCENARIOS = {
    # Arrays with a zero-length axis and astronomically long others: a result
    # of the right (empty) shape, or a clean MemoryError / ValueError; no hang.
    "zero-size-with-huge-dimensions": r'''
for shape in [(2**40, 0), (0, 2**40), (2**20, 2**20, 0)]:
    z = np.empty(shape)
    calls = {
        "softmax": lambda: fastxent.softmax(z),
        "log_softmax": lambda: fastxent.log_softmax(z),
        "softmax-axis0": lambda: fastxent.softmax(z, axis=0),
        "logsumexp": lambda: fastxent.logsumexp(z),
        "logsumexp-axis0": lambda: fastxent.logsumexp(z, axis=0),
        "entropy": lambda: fastxent.entropy(z),
        "kl": lambda: fastxent.kl_divergence(z, z),
        "bce_logits": lambda: fastxent.binary_cross_entropy_with_logits_with_grad(
            z, z, reduction="none"),
        "bce": lambda: fastxent.binary_cross_entropy(z, z, reduction="sum"),
        "ce-prob": lambda: fastxent.cross_entropy_with_grad(z, z, axis=0),
        "keras-binary": lambda: fk.binary_crossentropy(z, z),
    }
    for name, call in calls.items():
        try:
            result = call()
        except (MemoryError, ValueError):
            CHECKS += 1
            continue
        for r in (result if isinstance(result, tuple) else (result,)):
            assert isinstance(r, (np.ndarray, np.generic)), (name, type(r))
            if np.ndim(r):
                assert r.size == 0, (name, shape, r.shape)
        CHECKS += 1
    # no classes at all: no label fits them (IndexError), or the labels'
    # contiguous copy cannot be made (MemoryError)
    if shape[-1] == 0:
        labels = np.broadcast_to(np.int64(0), shape[:-1])
        expect((IndexError, MemoryError), [], fastxent.cross_entropy, z, labels)
        expect((IndexError, MemoryError), [], fastxent.nll_loss_with_grad, z, labels)
''',
    # Zero-stride views of 2**35 elements (256 GiB if copied) under an 8 GiB
    # address-space limit: every function fails cleanly with MemoryError.
    "huge-broadcast-views": r'''
import resource
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
n = 2**33
x = np.broadcast_to(np.float64(0.5), (n, 4))
labels = np.broadcast_to(np.int64(1), (n,))
calls = [
    lambda: fastxent.cross_entropy(x, labels),
    lambda: fastxent.cross_entropy_with_grad(x, x),
    lambda: fastxent.nll_loss(x, labels, reduction="sum"),
    lambda: fastxent.binary_cross_entropy_with_logits(x, x),
    lambda: fastxent.binary_cross_entropy_with_grad(x, x),
    lambda: fastxent.softmax(x),
    lambda: fastxent.logsumexp(x),
    lambda: fastxent.entropy(x),
    lambda: fastxent.kl_divergence(x, np.float64(0.25)),
    lambda: fk.sparse_categorical_crossentropy(labels, x),
]
for call in calls:
    try:
        call()
    except (MemoryError, ValueError):
        CHECKS += 1
    else:
        raise AssertionError("a 256 GiB computation finished under an 8 GiB limit?")
''',
    # out= overlapping an input other than the first one (or the first one in
    # another layout): ValueError naming the input; inputs and out untouched.
    "out-aliasing": r'''
for name, fn, args, kwargs in WITH_OUT:
    first = args[0]
    # the first input in another layout, or a part of it
    for out in (first[::-1], first[:, ::-1], first[::-1, ::-1]):
        expect(ValueError, [r"\bout\b", "overlaps"], fn, *args, out=out, **kwargs)
    wide = np.zeros((5, 4))
    wide[:4, :3] = first
    inputs = (wide[:4, :3],) + args[1:]
    expect(ValueError, [r"\bout\b", "overlaps"], fn, *inputs, out=wide[1:, 1:], **kwargs)
    # out sharing memory with the target, weight or pos_weight, partly
    for other in [k for k, v in kwargs.items() if isinstance(v, np.ndarray)] + (
            ["target"] if args[1:] and args[1].dtype.kind == "f" else []):
        buffer = np.zeros((6, 3))
        out = buffer[1:5]
        if other == "target":
            buffer[:4] = args[1]
            t = buffer[:4]
            expect(ValueError, [r"\bout\b", "overlaps target"], fn, args[0], t, out=out, **kwargs)
            expect(ValueError, [r"\bout\b", "overlaps target"], fn, args[0], t, out=buffer[2:6],
                   **kwargs)
        else:
            value = kwargs[other]
            view = buffer[4] if value.ndim == 1 else buffer[:4]
            view[...] = value
            before = buffer.copy()
            try:
                fn(*args, out=out, **{**kwargs, other: view})
            except ValueError as e:
                assert re.search(rf"\bout\b.*overlaps {other}", str(e)), str(e)
                assert buffer.tobytes() == before.tobytes(), "a failed call wrote into out"
                CHECKS += 1
            else:
                raise AssertionError(f"{name}: out overlapping {other} accepted")
    # the first input itself as out: allowed, and the numbers of a fresh call
    want = fn(*args, **kwargs)
    for layout in ("c", "strided", "fortran"):
        buf = {"c": first.copy(), "fortran": np.asfortranarray(first),
               "strided": np.repeat(first, 2, axis=1)[:, ::2]}[layout]
        got = fn(buf, *args[1:], out=buf, **kwargs)
        result = got[1] if isinstance(got, tuple) else got
        assert result is buf, (name, layout)
        same(got, want)
''',
    # out= of any layout (Fortran, strided, negative strides, unaligned):
    # filled with the numbers of a fresh call, nothing written between.
    "non-contiguous-out": r'''
def unaligned(shape):
    raw = np.zeros(int(np.prod(shape)) * 8 + 1, np.uint8)
    return raw[1:].view(np.float64).reshape(shape)

for name, fn, args, kwargs in WITH_OUT:
    want = fn(*args, **kwargs)
    for layout in ("fortran", "strided", "negative", "unaligned", "row-padded"):
        sentinel = np.full((8, 6), 7.25)
        out = {"fortran": np.asfortranarray(np.zeros((4, 3))),
               "strided": sentinel[::2, ::2],
               "negative": sentinel[7::-2, 5::-2],
               "unaligned": unaligned((4, 3)),
               "row-padded": sentinel[:4, :3]}[layout]
        saved = _arrays(args + tuple(kwargs.values()))
        got = fn(*args, out=out, **kwargs)
        result = got[1] if isinstance(got, tuple) else got
        assert result is out, (name, layout)
        same(got, want)
        unchanged(saved)
        if layout in ("strided", "negative", "row-padded"):
            mask = np.ones((8, 6), bool)
            mask[{"strided": (slice(None, None, 2), slice(None, None, 2)),
                  "negative": (slice(7, None, -2), slice(5, None, -2)),
                  "row-padded": (slice(0, 4), slice(0, 3))}[layout]] = False
            assert np.all(sentinel[mask] == 7.25), f"{name}: out= wrote outside its elements"
    # classes on axis 0 with a C-contiguous out
    if name in ("ce", "nll", "softmax", "log_softmax"):
        want0 = fn(*(a.T if a.ndim == 2 else a for a in args), axis=0, **kwargs)
        out = np.zeros((3, 4))
        got = fn(*(a.T if a.ndim == 2 else a for a in args), axis=0, out=out, **kwargs)
        same(got, want0)
''',
    # Read-only memory-mapped inputs work and stay unchanged; as out= they are refused.
    "read-only-memmap": r'''
import hashlib, os
path = os.path.join(TMP, "inputs.f64")
np.concatenate([X.ravel(), P.ravel(), T.ravel(), np.array([1.0, 2.0, 0.5])]).tofile(path)
digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
mm = np.memmap(path, np.float64, "r")
mx, mp, mt, mw = mm[:12].reshape(4, 3), mm[12:24].reshape(4, 3), mm[24:36].reshape(4, 3), mm[36:]
assert not mx.flags.writeable
for name, fn, args, kwargs in WITH_OUT:
    mapped = {"ce": lambda: ((mx, L), {}), "nll": lambda: ((mx, L), {"weight": mw}),
              "bcel": lambda: ((mx, mt), {"weight": kwargs["weight"], "pos_weight": mw}),
              "bce": lambda: ((mp, mt), {"weight": kwargs["weight"]}),
              "softmax": lambda: ((mx,), {}), "log_softmax": lambda: ((mx,), {})}[name]()
    same(fn(*mapped[0], **mapped[1]), fn(*args, **kwargs))
    expect(ValueError, [r"\bout\b", "read-only"], fn, *mapped[0], out=mapped[0][0], **mapped[1])
    expect(ValueError, [r"\bout\b", "read-only"], fn, *args, out=mx, **kwargs)
same(fastxent.logsumexp(mx), fastxent.logsumexp(X))
same(fastxent.entropy(mp), fastxent.entropy(P))
same(fastxent.kl_divergence(mp, mt + 0.5), fastxent.kl_divergence(P, T + 0.5))
same(fastxent.cross_entropy(mx, mp, weight=mw), fastxent.cross_entropy(X, P, weight=mw.copy()))
same(fk.categorical_crossentropy(mt, mp), fk.categorical_crossentropy(T, P))
del mm, mx, mp, mt, mw
assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest, "the file was modified"
''',
    # Views whose strides do not fit in 32 bits (rows 2 GiB apart in a sparse
    # memory-mapped file), negative, zero and self-overlapping strides.
    "extreme-strides": r'''
import os
path = os.path.join(TMP, "sparse.f32")
big = np.memmap(path, np.float32, "w+", shape=(4, 2**29))   # 8 GiB of holes
assert big.strides[0] == 2**31
X32, P32, T32 = X.astype(np.float32), P.astype(np.float32), T.astype(np.float32)
big[:, :3] = X32
big[:, 2**28:2**28 + 3] = T32
big[:, -3:] = P32
views = {"x": big[:, :3], "t": big[:, 2**28:2**28 + 3], "p": big[:, -3:]}
assert views["x"].strides == (2**31, 4) and big[::-1, :3].strides == (-2**31, 4)
cols = big[0, :3 * 2**27:2**27].reshape(1, 3)   # classes 512 MiB apart
assert cols.strides[1] == 2**29
x, t, p = views["x"], views["t"], views["p"]
same(fastxent.cross_entropy_with_grad(x, L), fastxent.cross_entropy_with_grad(X32, L))
same(fastxent.cross_entropy_with_grad(x, p, axis=0),
     fastxent.cross_entropy_with_grad(X32, P32, axis=0))
same(fastxent.nll_loss_with_grad(big[::-1, :3], L), fastxent.nll_loss_with_grad(X32[::-1], L))
same(fastxent.binary_cross_entropy_with_logits_with_grad(x, t),
     fastxent.binary_cross_entropy_with_logits_with_grad(X32, T32))
same(fastxent.binary_cross_entropy_with_grad(p, t),
     fastxent.binary_cross_entropy_with_grad(P32, T32))
same(fastxent.softmax(x, axis=0), fastxent.softmax(X32, axis=0))
same(fastxent.logsumexp(cols), fastxent.logsumexp(np.ascontiguousarray(cols)))
same(fastxent.kl_divergence(p, t + 0.5), fastxent.kl_divergence(P32, T32 + 0.5))
# out= rows 2 GiB apart: filled, its neighbours in the file untouched
want = fastxent.cross_entropy_with_grad(X32, L)
out = big[:, 2**29 - 10:2**29 - 7]
got = fastxent.cross_entropy_with_grad(X32, L, out=out)
assert got[1] is out
same(got, want)
assert not big[:, 2**29 - 7:2**29 - 3].any() and not big[:, 2**29 - 13:2**29 - 10].any()
want = fastxent.log_softmax(X32)
same(fastxent.log_softmax(x, out=x), want)                 # in place, 2 GiB rows
same(fastxent.log_softmax(X32, out=big[::-1, 5:8][::-1]), want)
# zero strides as inputs
zx = np.broadcast_to(np.float32(1.5), (4, 3))
same(fastxent.cross_entropy_with_grad(zx, L),
     fastxent.cross_entropy_with_grad(np.full((4, 3), 1.5, np.float32), L))
same(fastxent.softmax(np.broadcast_to(X32[:1], (4, 3))),
     fastxent.softmax(np.repeat(X32[:1], 4, axis=0)))
# a writeable out whose elements all alias one another: refused, or written
# (the last write wins); never a crash
from numpy.lib.stride_tricks import as_strided
for name, fn, args, kwargs in WITH_OUT:
    cell = np.zeros(1)
    out = as_strided(cell, shape=(4, 3), strides=(0, 0), writeable=True)
    try:
        got = fn(*args, out=out, **kwargs)
    except ValueError as e:
        assert "out" in str(e), str(e)
    else:
        assert (got[1] if isinstance(got, tuple) else got) is out
    CHECKS += 1
del big, views, x, t, p, out, cols
os.remove(path)
''',
    # Object arrays holding arrays (ragged or not), nested object arrays, a
    # 0-d object array around an array: TypeError naming the argument.
    "object-arrays-holding-arrays": r'''
def holder(*items):
    a = np.empty(len(items), object)
    for i, item in enumerate(items):
        a[i] = item
    return a

objects = {
    "rows": holder(*X),
    "ragged": holder(X[0], X[1, :2], X[2], X[3]),
    "nested": holder(holder(*X[:2]), holder(*X[2:]), X[0], X[1]),
    "0d": np.array(None, object),
    "2d": np.array([[X[0], X[1], X[2]]] * 4, dtype=object).reshape(4, 3, 3)[:, :, 0],
}
objects["0d"][()] = X
calls = [
    ("logits", lambda o: fastxent.cross_entropy(o, L)),
    ("target", lambda o: fastxent.cross_entropy_with_grad(X, o)),
    ("weight", lambda o: fastxent.cross_entropy(X, L, weight=o)),
    ("log_probs", lambda o: fastxent.nll_loss_with_grad(o, L)),
    ("target", lambda o: fastxent.nll_loss(X, o)),
    ("logits", lambda o: fastxent.binary_cross_entropy_with_logits_with_grad(o, T)),
    ("target", lambda o: fastxent.binary_cross_entropy_with_logits(X, o)),
    ("pos_weight", lambda o: fastxent.binary_cross_entropy_with_logits(X, T, pos_weight=o)),
    ("probs", lambda o: fastxent.binary_cross_entropy_with_grad(o, T)),
    ("weight", lambda o: fastxent.binary_cross_entropy(P, T, weight=o)),
    ("x", lambda o: fastxent.softmax(o)),
    ("x", lambda o: fastxent.log_softmax(o, axis=0)),
    ("x", lambda o: fastxent.logsumexp(o)),
    ("p", lambda o: fastxent.entropy(o)),
    ("p", lambda o: fastxent.kl_divergence(o, P)),
    ("q", lambda o: fastxent.kl_divergence(P, o)),
    ("y_pred", lambda o: fk.categorical_crossentropy(T, o)),
    ("y_true", lambda o: fk.binary_crossentropy(o, P)),
    ("y_pred", lambda o: fk.sparse_categorical_crossentropy(L, o)),
    ("y_true", lambda o: fk.sparse_categorical_crossentropy(o, P)),
    ("y_proba", lambda o: fsk.log_loss(L, o)),
    ("sample_weight", lambda o: fsk.log_loss(L, P / P.sum(1, keepdims=True), sample_weight=o)),
]
for arg, call in calls:
    for kind, o in objects.items():
        if kind in ("0d", "2d"):
            # of a shape wrong for some arguments as well: a ValueError naming it will do
            expect((TypeError, ValueError), [rf"\b{arg}\b", "object|shape"], call, o)
        else:
            expect(TypeError, [rf"\b{arg}\b", "object"], call, o)
# a list of equal-length arrays is a 2-D float array: accepted
same(fastxent.cross_entropy_with_grad(list(X), L), fastxent.cross_entropy_with_grad(X, L))
same(fastxent.softmax([X[0], X[1]]), fastxent.softmax(X[:2]))
''',
    # Labels at the ends of the 64-bit range with out=logits (the in-place
    # failure must leave the logits intact), from several threads at once.
    "extreme-labels-in-place-from-threads": r'''
from concurrent.futures import ThreadPoolExecutor
big_labels = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 2**62, -2**62, 2**31, -2**31,
              2**32 + 1]
def attempt(i):
    rng = np.random.default_rng(i)
    x = rng.standard_normal((300, 7))
    target = rng.integers(0, 7, 300)
    k = int(rng.integers(0, 300))
    target[k] = big_labels[i % len(big_labels)]
    for fn, name in ((fastxent.cross_entropy_with_grad, "logits"),
                     (fastxent.nll_loss_with_grad, "log_probs")):
        before = x.copy()
        try:
            fn(x, target, reduction=("none", "sum", "mean")[i % 3], out=x)
        except IndexError as e:
            assert re.search(rf"label {target[k]} at position \({k},\)", str(e)), str(e)
        else:
            raise AssertionError("no IndexError")
        assert x.tobytes() == before.tobytes(), "a failed in-place call modified the logits"
    # the extreme value as ignore_index: those rows count for nothing
    loss = fastxent.cross_entropy(x, target, ignore_index=int(target[k]), reduction="sum")
    keep = np.arange(300) != k
    want = fastxent.cross_entropy(x[keep], target[keep], reduction="sum")
    assert abs(loss - want) <= 1e-12 * abs(want), (loss, want)
    return True
with ThreadPoolExecutor(4) as pool:
    assert all(pool.map(attempt, range(28)))
CHECKS += 28
expect(IndexError, [r"\by_true\b", "9223372036854775808"], fk.sparse_categorical_crossentropy,
       np.array([0, 2**63, 1, 2], np.uint64), P, from_logits=True)
''',
}

# scenarios that only make sense on some systems
_NEEDS = {
    "huge-broadcast-views": (sys.platform.startswith("linux"),
                             "RLIMIT_AS (to make a huge allocation fail) needs Linux"),
    "extreme-strides": (sys.maxsize > 2**32, "2 GiB strides need a 64-bit address space"),
}
# a correct implementation takes well under a second of work for each
SCENARIO_TIMEOUT = 60
TIMEOUTS = {"zero-size-with-huge-dimensions": 6}


def run_child(code, backend, tmp_path, timeout):
    src_dir = os.path.dirname(os.path.dirname(fastxent.__file__))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([src_dir] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("FASTXENT_NUM_THREADS", "2")
    try:
        return subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", code, backend, str(tmp_path)],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=str(tmp_path))
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
    pytest.fail(f"the child did not finish in {timeout} s (a hang)\n{stderr[-3000:]}",
                pytrace=False)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_risky_in_subprocess(backend, scenario, tmp_path):
    ok, reason = _NEEDS.get(scenario, (True, ""))
    if not ok:
        pytest.skip(reason)
    code = PRELUDE + textwrap.dedent(SCENARIOS[scenario]) + EPILOGUE
    proc = run_child(code, backend, tmp_path, TIMEOUTS.get(scenario, SCENARIO_TIMEOUT))
    detail = f"\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    assert proc.returncode >= 0, f"the child was killed by signal {-proc.returncode}{detail}"
    assert proc.returncode == 0, f"the child exited with status {proc.returncode}{detail}"
