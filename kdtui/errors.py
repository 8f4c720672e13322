"""The one exception type users see: a one-line message that names the fix."""


class KdtuiError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type name)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
