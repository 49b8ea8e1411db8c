"""The lab's small tree of errors: each one is a sentence a learner can act on."""


class LabError(Exception):
    """Something the learner can fix; the CLI prints it as one sentence."""


class ConfigError(LabError):
    """An sqsd option, a config file or a cron.yaml entry is not valid."""


class EndpointError(LabError):
    """The SQS endpoint is missing, refused by the safety guard, or not answering."""


class PortInUseError(LabError):
    """A port the lab wants on 127.0.0.1 is already taken."""


class NotRunningError(LabError):
    """A part of the lab that this call needs is not running."""


class WaitTimeout(LabError):
    """Something the lab waited for did not happen in time."""


class ProcessFailed(LabError):
    """A child process the lab started exited, or did not become ready in time."""


class MessageError(LabError):
    """A queue message cannot be delivered as it is, e.g. its task path names another server."""


#: The most characters of a user's value an error message quotes; a message stays one short line.
QUOTE_CHARS = 60
_ITEMS_SHOWN = 4  # of a list or mapping; the rest become "..."
_LEVELS_SHOWN = 3


def _short_repr(value: object, limit: int, level: int = 0) -> str:
    """Return a repr of value that looks at no more of it than `limit` characters need."""
    # A value built from YAML aliases can stand for billions of items: never walk it whole.
    if isinstance(value, (str, bytes)):
        return repr(value[: limit + 1])
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return (
            f"<a number of about {value.bit_length() * 30103 // 100000 + 1:,} digits>"  # log10(2) = 0.30103
        )
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        opening, closing = "[]" if isinstance(value, list) else "()" if isinstance(value, tuple) else "{}"
        if level >= _LEVELS_SHOWN:
            return opening + "..." + closing
        shown: list[str] = []
        for item in value.items() if isinstance(value, dict) else value:
            if len(shown) == _ITEMS_SHOWN:
                shown.append("...")
                break
            if isinstance(value, dict):
                key, inner = item
                shown.append(f"{_short_repr(key, limit, level + 1)}: {_short_repr(inner, limit, level + 1)}")
            else:
                shown.append(_short_repr(item, limit, level + 1))
        return opening + ", ".join(shown) + closing
    return repr(value)


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """Return repr(value) cut to `limit` characters with an ellipsis, cheap even for a huge value."""
    text = _short_repr(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clipped(text: str, limit: int = QUOTE_CHARS) -> str:
    """Return text cut to `limit` characters with an ellipsis (for names and lists of names)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
