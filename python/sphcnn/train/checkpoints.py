"""Checkpoints of the train state with Orbax: saved every N steps and at the
end, the last K kept, the latest restored on start. The data order needs no
state of its own: batches are a function of (seed, step). Orbax writes a
checkpoint into a temporary directory and renames it when complete, and drops
old ones only after that, so a save that fails (a full disk) leaves the previous
checkpoints intact: it raises CheckpointError, which says so. A SIGINT or SIGTERM
that arrives during a save is held until the save is complete
(sphcnn.train.interrupts.deferred), so a checkpoint is never left half written."""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp

from sphcnn.errors import RunError
from sphcnn.train import interrupts
from sphcnn.train.step import TrainState


class CheckpointError(RunError):
    """A checkpoint could not be written."""


class Checkpoints:
    def __init__(self, workdir: pathlib.Path, keep: int):
        self.manager = ocp.CheckpointManager(
            (workdir / "checkpoints").absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=keep))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, state: TrainState) -> None:
        step = int(state.step)
        previous = self.manager.latest_step()
        if step == previous:
            return
        with interrupts.deferred():
            interrupts.signal_for_tests("checkpoint", step)
            try:
                self.manager.save(step, args=ocp.args.StandardSave(state))
                self.manager.wait_until_finished()
            except Exception as err:  # any failure to write: report it with what is left (see the module docstring)
                kept = (f"the checkpoint of step {previous} is intact" if previous is not None
                        else "there is no earlier one")
                raise CheckpointError(
                    f"could not write the checkpoint of step {step} to {self.manager.directory} "
                    f"({type(err).__name__}: {err}); {kept}: free disk space (or fix the directory) and rerun the "
                    "same command to resume") from err

    def restore(self, like: TrainState, step: int | None = None) -> TrainState:
        """The checkpoint at `step` (default: the latest), shaped and sharded like `like`."""
        step = self.manager.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return TrainState(*restored) if not isinstance(restored, TrainState) else restored

    def close(self) -> None:
        self.manager.close()
