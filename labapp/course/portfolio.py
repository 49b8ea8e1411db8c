"""What the kit keeps of your solved exercises for notebook 10's bundle: a handler, and options.

When the check of a kept exercise says correct, its answer goes to `lab_home()/portfolio/`: a
handler as its source plus the imports it needs, options as their values. Nothing is kept when
progress is not recorded (a notebook from solutions/, LAB_PROGRESS=off).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from labapp.course import progress
from labapp.errors import LabError
from labapp.settings import lab_home

#: The exercises whose answers the bundle is built from, and the name each answer has.
HANDLER_EXERCISE = "03.1"
KEPT = {HANDLER_EXERCISE: "handle_order", "04.1": "outage_options", "06.1": "report_options"}
#: Values a bundle can carry by writing them out, as `NAME = value`.
_LITERALS = (bool, int, float, str, bytes, type(None))


class PortfolioError(LabError):
    """A solved answer the bundle cannot carry (say, a handler using an object made in the notebook)."""


@dataclasses.dataclass(frozen=True)
class Handler:
    """A handler as a bundle's application.py can hold it: its source and what that source imports."""

    exercise: str
    name: str
    imports: tuple[str, ...]
    source: str


def folder() -> Path:
    """Return the folder the kept answers live in, one JSON file per exercise."""
    return lab_home() / "portfolio"


def keep(exercise_id: str, namespace: Mapping[str, Any]) -> str | None:
    """Keep a correct answer of a kept exercise; return a sentence for the learner, or None."""
    name = KEPT.get(exercise_id)
    if name is None or name not in namespace or progress.not_recorded_because() is not None:
        return None
    value = namespace[name]
    try:
        if callable(value):
            record: dict[str, Any] = dataclasses.asdict(handler_of(exercise_id, value))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            record = {"exercise": exercise_id, "name": name, "options": dataclasses.asdict(value)}
        else:
            return None
    except PortfolioError as exc:
        return f"Notebook 10's bundle cannot use this {name}: {exc}"
    folder().mkdir(parents=True, exist_ok=True)
    (folder() / f"{exercise_id}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return f"Kept your {name} for the bundle you build in notebook 10."


def load(exercise_id: str) -> dict[str, Any] | None:
    """Return what was kept for an exercise, or None."""
    file = folder() / f"{exercise_id}.json"
    if not file.is_file():
        return None
    try:
        record: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record


def kept_handler() -> Handler | None:
    """Return the handler kept from exercise 03.1, or None."""
    record = load(HANDLER_EXERCISE)
    if record is None or "source" not in record:
        return None
    return Handler(record["exercise"], record["name"], tuple(record["imports"]), record["source"])


def handler_of(exercise_id: str, function: Callable[..., Any]) -> Handler:
    """Return the function's source and the imports of every global it uses; raise PortfolioError."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise PortfolioError(f"the source of {function!r} cannot be read.") from None
    code = getattr(function, "__code__", None)
    if code is None:
        raise PortfolioError(f"{function!r} is not a plain function.")
    glob = getattr(function, "__globals__", {})
    imports = []
    for name in sorted(set(_names(code)) & set(glob)):
        imports.append(_import_line(name, glob[name], function))
    return Handler(exercise_id, function.__name__, tuple(imports), source)


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _import_line(name: str, value: Any, user: Callable[..., Any]) -> str:
    if isinstance(value, types.ModuleType):
        module = value.__name__
        return f"import {module}" if module == name else f"import {module} as {name}"
    if isinstance(value, _LITERALS):
        return f"{name} = {value!r}"
    home = _public_home(name, value, mine=getattr(user, "__module__", "__main__"))
    if home is None:
        raise PortfolioError(
            f"`{user.__name__}` uses `{name}`, which was made in the notebook; a bundle carries only what it can "
            "import, so build it inside the function or import it."
        )
    return f"from {home} import {name}"


def _public_home(name: str, value: Any, mine: str) -> str | None:
    """The module a bundle can import `value` from as `name`: first the packages above where it was
    defined (labapp.course for process), then the shortest public module holding it (flask for
    request), never the handler's own module (a notebook, a test)."""
    defined = getattr(value, "__module__", None) if not isinstance(value, types.ModuleType) else None
    if isinstance(defined, str):
        parts = defined.split(".")
        for depth in range(1, len(parts) + 1):
            if _holds(sys.modules.get(".".join(parts[:depth])), name, value):
                return ".".join(parts[:depth])
    own = {mine.split(".")[0], "__main__"}
    homes = [
        module_name
        for module_name, module in list(sys.modules.items())
        if module_name.split(".")[0] not in own
        and not any(part.startswith("_") for part in module_name.split("."))
        and _holds(module, name, value)
    ]
    return min(homes, key=lambda home: (home.count("."), len(home)), default=None)


def _holds(module: Any, name: str, value: Any) -> bool:
    # The module's own dict, not getattr: a module-level __getattr__ may import or warn.
    return module is not None and getattr(module, "__dict__", {}).get(name) is value
