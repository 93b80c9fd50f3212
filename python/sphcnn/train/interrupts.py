"""Ctrl-C (SIGINT) and SIGTERM in the `sphcnn` commands: a signal becomes an
:class:`Interrupted` exception (a KeyboardInterrupt) that the training loop
turns into a consistent stop (a checkpoint of the state between two steps,
files closed) and the command line into one line and exit status 128 + the
signal number (130, 143).

While a :func:`deferred` block runs (a training step and the assignment of its
new state, a checkpoint being written, a metrics record), a signal is held and
raised when the block ends, so that it never splits what the block writes.
After the first signal, later ones are ignored: the command is already
stopping (writing its last checkpoint, closing its files).

Tests reach a phase deterministically with one hook, :func:`signal_for_tests`
(environment variable SPHCNN_TEST_SIGNAL_AT; unset in normal use), called after
each training step, after each batch of an evaluation and inside the deferred
block of a checkpoint being written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
TEST_SIGNAL_VARIABLE = "SPHCNN_TEST_SIGNAL_AT"


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM stopped the command.

    Args:
        signum: the signal's number.
        detail: what was running and what was saved, filled in by the code that
            stopped (empty if none did).
    """

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(signum, detail)
        self.signum = signum
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.name} {self.detail}".rstrip()

    @property
    def name(self) -> str:
        """SIGINT or SIGTERM."""
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process that the signal ended."""
        return 128 + self.signum


class _State:
    """The handlers' state: how deep in deferred blocks, the signal held, whether stopping."""

    depth = 0
    pending: int | None = None
    stopping = False


def _handle(signum: int, frame) -> None:
    """The signal handler: raise Interrupted, or hold the signal inside a deferred block."""
    del frame
    if _State.stopping:
        return
    if _State.depth:
        _State.pending = signum
        return
    _State.stopping = True
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise Interrupted (from the main
    thread only; elsewhere the block changes nothing); a signal the process
    ignores (SIGINT in a background job of a shell script) stays ignored. The
    previous handlers are restored when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.depth, _State.pending, _State.stopping = 0, None, False
    previous = {signum: signal.signal(signum, _handle) for signum in SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal that arrives inside the block is raised (as Interrupted) when
    the block has ended without an error."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
    if _State.depth == 0 and _State.pending is not None:
        signum, _State.pending = _State.pending, None
        _State.stopping = True
        raise Interrupted(signum)


def signal_for_tests(phase: str, step: int) -> None:
    """Tests only: send this process a signal at a chosen point of a run.

    Args:
        phase: the point reached: 'train' (after a training step), 'validation'
            or 'test' (after a batch of that evaluation, in training or in
            `sphcnn eval`), 'checkpoint' (while a checkpoint is being written).
        step: the step of the train state there.

    When $SPHCNN_TEST_SIGNAL_AT is 'PHASE:STEP' (SIGINT) or 'PHASE:STEP:TERM'
    (SIGTERM) and names this point, the signal is sent; its handler raises (or
    holds it, in a deferred block) as this call returns. Otherwise nothing
    happens.
    """
    wanted = os.environ.get(TEST_SIGNAL_VARIABLE, "").split(":")
    if wanted[:2] == [phase, str(step)]:
        os.kill(os.getpid(), signal.SIGTERM if wanted[2:] == ["TERM"] else signal.SIGINT)
