"""The base of the run-time failures a user can act on (a diverged run, a
checkpoint that could not be written): the command line reports them in one
line, like bad arguments (ValueError) and operating-system failures (OSError)."""


class RunError(RuntimeError):
    """A run stopped for a reason its message explains, with what to do."""


class MissingPackage(RunError):
    """An optional package a command needs is not installed (the message names
    the pip command that installs it)."""
