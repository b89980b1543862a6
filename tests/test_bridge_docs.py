"""The documentation of the framework bridges is whole: every public function
and class of fastxent.torch, .jax, .keras, .dask and .stream names each of its
parameters in its docstring (what help() shows), has Returns (or Attributes)
and Examples sections, and no shared section was left unfilled."""

import importlib
import inspect
import re
import subprocess
import sys

import pytest

from fastxent._bridges import fill

# module: the libraries it needs
BRIDGES = {
    "fastxent.torch": ["torch"],
    "fastxent.jax": ["jax"],
    "fastxent.keras": [],
    "fastxent.dask": ["dask.array"],
    "fastxent.stream": [],
}
# fastxent.keras's loss classes come from Keras, made at first access: their
# parameters are Keras's (documented in their docstring, not checked here).
KERAS_CLASSES = {"BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy"}


def _public(module_name):
    for library in BRIDGES[module_name]:
        pytest.importorskip(library)
    module = importlib.import_module(module_name)
    names = [n for n in module.__all__
             if not (module_name == "fastxent.keras" and n in KERAS_CLASSES)]
    return [(f"{module_name}.{n}", getattr(module, n)) for n in names]


def _documented_names(doc, section):
    """The names a numpydoc section lists ("a, b : type" lines count for both)."""
    match = re.search(rf"^{section}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc, re.M | re.S)
    if match is None:
        return set()
    names = set()
    for line in match.group(1).splitlines():
        if line and not line[0].isspace():
            names.update(n.strip() for n in line.split(":")[0].split(","))
    return names


@pytest.mark.parametrize("module_name", sorted(BRIDGES))
def test_docstrings_are_whole(module_name):
    for qualname, obj in _public(module_name):
        doc = inspect.getdoc(obj)
        assert doc, qualname
        assert not re.search(r"^\s*\{\w+\}\s*$", doc, re.M), f"{qualname}: an unfilled section"
        is_tuple = isinstance(obj, type) and issubclass(obj, tuple)
        if is_tuple:  # a NamedTuple documents its fields
            assert set(obj._fields) <= _documented_names(doc, "Attributes"), qualname
            continue
        function = obj.__init__ if isinstance(obj, type) else obj
        parameters = set(inspect.signature(function).parameters) - {"self"}
        missing = parameters - _documented_names(doc, "Parameters")
        assert not missing, f"{qualname}: parameters not documented: {sorted(missing)}"
        sections = ["Examples"] if isinstance(obj, type) else ["Returns", "Examples"]
        for section in sections:
            assert re.search(rf"^{section}\n-+$", doc, re.M), f"{qualname}: no {section}"


def test_fill_puts_sections_in_place_and_refuses_unknown_ones():
    @fill(shared="""
        x : int
            The shared option.""")
    def documented(x, y):
        """Summary.

        Parameters
        ----------
        {shared}
        y : int
        """

    assert documented.__doc__ == ("Summary.\n\nParameters\n----------\nx : int\n"
                                  "    The shared option.\ny : int\n")
    with pytest.raises(KeyError, match="typo"):
        fill(shared="")(type("Documented", (), {"__doc__": "Summary.\n\n    {typo}\n"}))


def test_importing_fastxent_does_not_import_torch():
    # (JAX, Keras: test_jax_bridge.py; Dask: test_dask.py.) The bridges' type
    # annotations import the frameworks only for type checkers.
    code = "import sys, fastxent, fastxent.keras, fastxent.stream; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
