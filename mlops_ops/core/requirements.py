"""What a fitted model needs installed to be loaded again: its pinned pip requirements, computed cheaply.

When ``log_model`` is given no ``pip_requirements``, MLflow infers them by loading the saved model
in a fresh Python process and recording what it imports: 4-7 s per model. The modules a pickled
model needs are written in the pickle itself: every class and function it refers to is named by
module and attribute (``GLOBAL``/``STACK_GLOBAL`` opcodes; cloudpickle's by-value functions name
the modules they use through ``subimport``). :func:`model_requirements` pickles the model once
with cloudpickle (as MLflow's sklearn flavour saves it), reads those names with ``pickletools``,
maps each top-level module to the installed distribution that provides it
(``importlib.metadata.packages_distributions``) and pins the installed version: a few
milliseconds. The scientific stack a scikit-learn model is loaded with (:data:`BASE`) is always
pinned, whatever the pickle names.
"""

from __future__ import annotations

import functools
import logging
import pickletools
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

#: distributions every model logged by mlops-ops is loaded with (MLflow adds ``mlflow`` itself)
BASE = ("scikit-learn", "numpy", "scipy", "pandas", "cloudpickle")

_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_NO_PUSH_OPS = frozenset({"PROTO", "FRAME", "MEMOIZE", *_PUT_OPS})
#: cloudpickle functions whose string argument is a module to import when loading
_SUBIMPORT = frozenset({"subimport", "dynamic_subimport"})


def pickled_modules(data: bytes) -> set[str]:
    """Top-level names of the modules a pickle imports when it is loaded.

    :param data: a pickle (any protocol).
    :returns: top-level module names, e.g. ``{"sklearn", "numpy", "cloudpickle"}``.
    :raises ValueError: ``data`` is not a pickle.
    """
    found: set[str] = set()
    recent: list[Any] = []  # what each opcode pushed: a string, a memo value, or None
    memo: dict[Any, Any] = {}
    subimport_pending = False
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            found.add(str(arg).split(" ", 1)[0])
        elif name == "STACK_GLOBAL":
            module, attr = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            if isinstance(module, str):
                found.add(module)
                subimport_pending = isinstance(attr, str) and attr in _SUBIMPORT and "cloudpickle" in module
        if name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in _PUT_OPS:
            memo[arg] = recent[-1] if recent else None
        if name in _NO_PUSH_OPS:
            continue
        value = arg if name in _STRING_OPS else memo.get(arg) if name in _GET_OPS else None
        if subimport_pending and isinstance(value, str):
            found.add(value)
            subimport_pending = False
        recent.append(value)
    return {m.split(".", 1)[0] for m in found if m}


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def _pinned(distribution: str) -> str | None:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    return f"{distribution}=={version.split('+', 1)[0]}"  # a local label (+cpu) is not on PyPI


def requirements_for(modules: Iterable[str], base: Iterable[str] = BASE) -> list[str]:
    """``name==version`` of the installed distributions providing ``modules``, plus ``base``.

    Standard-library modules need nothing. A module no installed distribution provides (code
    next to the DAGs, an editable checkout) is logged as a warning: the model will only load
    where that code is importable.

    :param modules: top-level module names.
    :param base: distributions pinned whatever the modules are.
    :returns: sorted requirement strings, without ``mlflow`` (MLflow pins it itself).
    """
    providers = _distributions()
    wanted = set(base)
    for module in modules:
        if module in sys.stdlib_module_names or module in sys.builtin_module_names or module == "__main__":
            continue
        dists = providers.get(module)
        if not dists:
            log.warning(
                "the model needs module %r, which no installed distribution provides: it will only load "
                "where that module is importable",
                module,
            )
            continue
        wanted.update(dists)
    wanted.discard("mlflow")
    pins = {_pinned(d) for d in wanted}
    return sorted(p for p in pins if p is not None)


def model_requirements(model: Any) -> list[str]:
    """Pinned pip requirements of a fitted model, read from its pickle (no model is loaded).

    :param model: any picklable object, typically a fitted scikit-learn ``Pipeline``.
    :returns: sorted ``name==version`` strings: :data:`BASE` plus the distribution of every
        module the pickle refers to (a third-party estimator's package, for example).
    """
    import cloudpickle

    return requirements_for(pickled_modules(cloudpickle.dumps(model)))
