"""User-facing errors: one clear line, no traceback, a non-zero exit from the CLI."""


class UserError(Exception):
    """A problem with the user's input or environment that they can fix.

    The message must say what is wrong and what to do; the CLI prints it as one line.
    """


class ArtefactError(UserError):
    """A stored artefact is missing, truncated, altered or foreign."""
