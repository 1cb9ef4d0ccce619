"""`UserError`: a mistake in what the user gave (a path, a flag, a file's contents).

Library code raises it where the cause is the input, not the code; every command
of `msreid` prints it as one line, `msreid <command>: error: <message>`, and exits
with status 2. It subclasses `ValueError`, so callers of the Python API that catch
`ValueError` keep working. Anything else that escapes a command is a bug and keeps
its traceback.

Example:

>>> raise UserError("--steps-per-epoch must be >= 0 (0: one PK pass), got -1")
"""


class UserError(ValueError):
    """A bad input, named in the message; the CLI prints it without a traceback."""
