"""Read sqsd options from a bundle's `.ebextensions` files (YAML or JSON), as Elastic Beanstalk does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from labapp.errors import ConfigError
from labapp.sqsd.options import AWS_DEFAULTS, NAMESPACE, SqsdOptions, with_options

WRONG_NAMESPACES = (f"{NAMESPACE}:sqsd",)


class _EbLoader(yaml.SafeLoader):
    """A safe loader that reads CloudFormation tags (!Ref, !GetAtt, ...) in .config files as plain values."""


def _plain_value(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_EbLoader.add_multi_constructor("!", _plain_value)


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    try:
        # A .config file may be JSON; JSON indented with tabs is not YAML, so try JSON first.
        if path.suffix == ".json" or text.lstrip().startswith("{"):
            return json.loads(text)
        return yaml.load(text, Loader=_EbLoader)  # a SafeLoader subclass: no arbitrary objects
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML or JSON: {str(exc).splitlines()[0]}") from None


def _check_namespace(namespace: Any, path: Path) -> None:
    if namespace in WRONG_NAMESPACES:
        raise ConfigError(f"{path}: the namespace is {NAMESPACE}, not {namespace}.")


def _sqsd_settings(document: Any, path: Path) -> dict[str, Any]:
    """Pull the sqsd options out of one config document, in either option_settings form."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must be a mapping with option_settings at the top.")
    settings = document.get("option_settings") or {}
    found: dict[str, Any] = {}
    if isinstance(settings, dict):
        for namespace, options in settings.items():
            _check_namespace(namespace, path)
            if namespace == NAMESPACE:
                if not isinstance(options, dict):
                    raise ConfigError(f"{path}: {NAMESPACE} must map option names to values.")
                found.update(options)
    elif isinstance(settings, list):
        for entry in settings:
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: each option_settings entry must be a mapping; got {entry!r}.")
            _check_namespace(entry.get("namespace"), path)
            if entry.get("namespace") == NAMESPACE:
                if "option_name" not in entry:
                    raise ConfigError(f"{path}: an {NAMESPACE} entry has no option_name.")
                found[entry["option_name"]] = entry.get("value")
    else:
        raise ConfigError(f"{path}: option_settings must be a mapping or a list.")
    return found


def load_ebextensions(path: str | Path, base: SqsdOptions = AWS_DEFAULTS) -> SqsdOptions:
    """Read sqsd options from one `.config` file, or every `*.config` in an `.ebextensions` folder."""
    root = Path(path)
    if root.is_dir():
        folder = root / ".ebextensions" if (root / ".ebextensions").is_dir() else root
        files = sorted(folder.glob("*.config"))
    elif root.is_file():
        files = [root]
    else:
        raise ConfigError(
            f"{root} does not exist; point --config at a .config file or an .ebextensions folder."
        )
    options = base
    for file in files:
        settings = _sqsd_settings(_read_document(file), file)
        options = with_options(options, settings)
    return options
