"""What the framework bridges (fastxent.torch, fastxent.jax, fastxent.keras,
fastxent.dask) share: the core's `Reduction` type, and `fill`, which writes
the documentation of options many functions take once (the core's
softmax and log_softmax use it too).

A bridge's functions take several identical options; their documentation is
written once and put into each function's docstring by `fill`, so that
``help()`` and the Sphinx pages still show every function whole.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import TypeVar

from ._typing import Reduction  # the reductions of every loss, core and bridges

__all__ = ["Reduction", "fill"]

_Documented = TypeVar("_Documented", bound=Callable[..., object])


def fill(**sections: str) -> Callable[[_Documented], _Documented]:
    """A decorator putting `sections` into the docstring it decorates.

    A line of the docstring that holds only ``{name}`` is replaced by the
    section `name`, indented as that line. A placeholder without a section
    raises KeyError at import, so that a typo cannot reach ``help()``.
    """

    def apply(function: _Documented) -> _Documented:
        if function.__doc__ is None:  # python -OO: no docstrings
            return function
        lines = []
        for line in inspect.cleandoc(function.__doc__).splitlines():
            stripped = line.strip()
            if stripped.startswith("{") and stripped.endswith("}") and " " not in stripped:
                text = inspect.cleandoc(sections[stripped[1:-1]])
                indent = line[: len(line) - len(line.lstrip())]
                lines.append(textwrap.indent(text, indent))
            else:
                lines.append(line)
        function.__doc__ = "\n".join(lines) + "\n"
        return function

    return apply
