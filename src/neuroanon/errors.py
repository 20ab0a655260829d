"""One exception base for the library; the CLI turns these into exit codes."""


class NeuroanonError(Exception):
    """Base of every error neuroanon raises on purpose."""


class UsageError(NeuroanonError):
    """The caller asked for something that cannot be done (bad option, bad key, output inside input)."""


class InputError(NeuroanonError):
    """One input file cannot be processed: unreadable, truncated or malformed.

    Messages describe the problem, never an element value.
    """
