"""Models as pure pytrees: parameters and batch statistics as nested dicts of
arrays, for checkpoints and for jax.jit of a whole train step."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx


def model_state(model: nnx.Module) -> dict:
    """The model's variables as a pure pytree.

    Args:
      model: an nnx.Module.

    Returns:
      {'params': ..., 'batch_stats': ...} as nested dicts of arrays: the
      nnx.Param and the nnx.BatchStat variables.
    """
    return {
        "params": nnx.to_pure_dict(nnx.state(model, nnx.Param)),
        "batch_stats": nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)),
    }


def load_model_state(model: nnx.Module, tree: dict) -> None:
    """Write a model_state() tree into a model of the same architecture, checking
    structure, shapes and dtypes first.

    Args:
      model: an nnx.Module, updated in place.
      tree: {'params': ..., 'batch_stats': ...} as model_state gives it.

    Returns:
      None.

    Raises:
      ValueError: naming the first mismatch: other top-level keys, a missing or
        unexpected entry, or an entry of another shape or dtype.
    """
    expected = model_state(model)
    if set(tree) != set(expected):
        raise ValueError(f"load_model_state: expected keys {sorted(expected)}, got {sorted(tree)}")
    got_paths = dict(jax.tree_util.tree_leaves_with_path(tree))
    for path, want in jax.tree_util.tree_leaves_with_path(expected):
        if path not in got_paths:
            raise ValueError(f"load_model_state: missing entry {jax.tree_util.keystr(path)}")
        have = got_paths.pop(path)
        have_dtype, want_dtype = np.asarray(have).dtype, np.asarray(want).dtype
        if np.shape(have) != np.shape(want) or have_dtype != want_dtype:
            raise ValueError(
                f"load_model_state: entry {jax.tree_util.keystr(path)} has shape {np.shape(have)} and dtype "
                f"{have_dtype}; expected {np.shape(want)} {want_dtype}"
            )
    if got_paths:
        raise ValueError(f"load_model_state: unexpected entries {[jax.tree_util.keystr(p) for p in got_paths]}")
    for collection, kind in (("params", nnx.Param), ("batch_stats", nnx.BatchStat)):
        state = nnx.state(model, kind)
        nnx.replace_by_pure_dict(state, tree[collection])
        nnx.update(model, state)


def parameter_count(model: nnx.Module) -> int:
    """Number of parameter entries (a complex entry counts once).

    Args:
      model: an nnx.Module.

    Returns:
      The total size of its nnx.Param arrays, an int.
    """
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))))
