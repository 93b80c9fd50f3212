"""Checkpoints of the train state with Orbax: saved every N steps and at the
end, the last K kept, the latest restored on start. The data order needs no
state of its own: batches are a function of (seed, step)."""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp

from sphcnn.training import TrainState


class Checkpoints:
    def __init__(self, workdir: pathlib.Path, keep: int):
        self.manager = ocp.CheckpointManager(
            (workdir / "checkpoints").absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=keep))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state: TrainState) -> None:
        step = int(state.step)
        if step != self.manager.latest_step():
            self.manager.save(step, args=ocp.args.StandardSave(state))
            self.manager.wait_until_finished()

    def restore(self, like: TrainState, step: int | None = None) -> TrainState:
        """The checkpoint at `step` (default: the latest), shaped and sharded like `like`."""
        step = self.manager.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return TrainState(*restored) if not isinstance(restored, TrainState) else restored

    def close(self) -> None:
        self.manager.close()
