"""Read sqsd options from a bundle's `.ebextensions` files (YAML or JSON), as Elastic Beanstalk does."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from labapp.errors import ConfigError, clipped, quoted
from labapp.sqsd.documents import read_document
from labapp.sqsd.options import AWS_DEFAULTS, NAMESPACE, SqsdOptions, with_options

log = logging.getLogger("labapp.sqsd")

WRONG_NAMESPACES = (f"{NAMESPACE}:sqsd",)
EBEXTENSIONS = ".ebextensions"
YAML_SUFFIXES = (".yaml", ".yml")
#: Suffixes of files that hold YAML or JSON but that EB skips in .ebextensions.
MISNAMED_SUFFIXES = (*YAML_SUFFIXES, ".json")
#: YAML files that belong at a bundle root (docs/aws-behaviour.md#cron-yaml; Docker platforms read
#: docker-compose.yml); JSON at a root is package.json and the like, so it is not counted there either.
BUNDLE_ROOT_YAML = ("cron.yaml", "docker-compose.yml", "docker-compose.yaml")


def _read_document(path: Path) -> Any:
    return read_document(path, json_allowed=True, cloudformation_tags=True)


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
                raise ConfigError(
                    f"{path}: each option_settings entry must be a mapping; got {quoted(entry)}."
                )
            _check_namespace(entry.get("namespace"), path)
            if entry.get("namespace") == NAMESPACE:
                if "option_name" not in entry:
                    raise ConfigError(f"{path}: an {NAMESPACE} entry has no option_name.")
                if not isinstance(entry["option_name"], str):
                    raise ConfigError(
                        f"{path}: option_name must be a string; got {quoted(entry['option_name'])}."
                    )
                found[entry["option_name"]] = entry.get("value")
    else:
        raise ConfigError(f"{path}: option_settings must be a mapping or a list.")
    return found


def _config_files(folder: Path) -> list[Path]:
    """Return the folder's `*.config` files in name order, refusing a folder of misnamed ones."""
    files = sorted(folder.glob("*.config"))
    # A folder by another name may be a bundle root without .ebextensions, or one under a new name.
    suffixes = MISNAMED_SUFFIXES if folder.name == EBEXTENSIONS else YAML_SUFFIXES
    skipped = () if folder.name == EBEXTENSIONS else BUNDLE_ROOT_YAML
    misnamed = sorted(
        file
        for file in folder.iterdir()
        if file.suffix in suffixes and file.name not in skipped and file.is_file()
    )
    if not misnamed:
        return files
    names = clipped(", ".join(file.name for file in misnamed))
    # EB reads only *.config in .ebextensions and skips every other file without a word. An
    # empty folder is legal and means the defaults; but YAML or JSON files without a single
    # .config were almost certainly meant as config, and running on the defaults would hide the
    # mistake until a deploy behaves oddly, so it is an error. Next to real .config files they
    # may be notes or templates: a warning, which the CLI's logging prints, is enough.
    if not files:
        raise ConfigError(
            f"{folder} has no *.config file, and EB reads only *.config files in .ebextensions; "
            f"found {names}: rename each to end in .config."
        )
    log.warning("%s: EB reads only *.config files in .ebextensions, so it skips %s.", folder, names)
    return files


def load_ebextensions(path: str | Path, base: SqsdOptions = AWS_DEFAULTS) -> SqsdOptions:
    """Read sqsd options from one `.config` file, or every `*.config` in an `.ebextensions` folder."""
    root = Path(path)
    if root.is_dir():
        folder = root / EBEXTENSIONS if (root / EBEXTENSIONS).is_dir() else root
        files = _config_files(folder)
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
