"""The one exception type users see: a one-line message that names the fix."""


class KdtuiError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""
