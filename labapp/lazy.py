"""Package APIs that load on first use, so importing one small module never drags in the rest."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def exports(
    package: str, names: Mapping[str, Sequence[str]], submodules: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Return `__getattr__`, `__dir__` and `__all__` for a package whose names live in its modules.

    `names` maps a module to the names it provides; `submodules` are reachable as attributes too
    (e.g. `course.nb08`).
    """
    where = {name: module for module, provided in names.items() for name in provided}
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name in submodules:
            value: Any = importlib.import_module(f"{package}.{name}")
        elif name in where:
            value = getattr(importlib.import_module(where[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where) | set(submodules))

    return __getattr__, __dir__, sorted(where)
