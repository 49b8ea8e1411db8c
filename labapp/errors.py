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
