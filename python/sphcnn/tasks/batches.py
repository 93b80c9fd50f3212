"""Batches of examples for training and evaluation, and a prefetching wrapper.

Examples are rows of a set of NumPy arrays sharing their first axis (``fields``,
e.g. images and labels, or atom charges, positions and targets). A batch is a
dict of the chosen rows of every field, passed through the task's ``prepare``
(dtypes, axes, trimming), plus ``weights``: float32 (B,), 1 for real examples,
0 for padding.

Training (:class:`TrainingBatches`): epoch e visits the examples in the order
``numpy.random.default_rng([seed, e]).permutation(count)``, in
``count // batch_size`` full batches (the incomplete last batch is dropped).
Global step s is batch s % steps_per_epoch of epoch s // steps_per_epoch, so
iteration can start at any step (resume) without producing the skipped batches.

Evaluation (:func:`evaluation_batches`): consecutive batches covering every
example once, in order; the last is padded to the full batch size with rows of
zeros and weight 0.

Prefetch (:class:`Prefetcher`): a daemon thread fills a small queue from any
iterator; ``close()`` stops and joins it; an exception of the producer is
raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

from sphcnn_kernels import validation as checks

Prepare = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def _check_fields(func: str, fields) -> dict[str, np.ndarray]:
    if not isinstance(fields, Mapping) or not fields:
        raise ValueError(f"{func}: argument 'fields' must be a non-empty mapping of name -> array, got "
                         f"{type(fields).__name__}")
    arrays = {name: np.asarray(value) for name, value in fields.items()}
    counts = {name: (array.shape[0] if array.ndim else None) for name, array in arrays.items()}
    if len(set(counts.values())) != 1 or None in counts.values():
        raise ValueError(f"{func}: argument 'fields' must hold arrays with the same first axis (one row per "
                         f"example), got first axes {counts}")
    if "weights" in arrays:
        raise ValueError(f"{func}: argument 'fields' must not hold 'weights' (batches add it)")
    return arrays


def _batch(rows: dict[str, np.ndarray], weights: np.ndarray, prepare: Prepare | None) -> dict[str, np.ndarray]:
    batch = prepare(rows) if prepare is not None else dict(rows)
    batch["weights"] = weights.astype(np.float32)
    return batch


class TrainingBatches:
    """Shuffled training batches by global step (see the module docstring).

    fields: name -> array (count, ...), one row per example; batch_size:
    1 .. count; seed: the shuffling seed; prepare: the task's batch
    conversion (None: the rows as they are).
    """

    def __init__(self, fields: Mapping[str, np.ndarray], batch_size: int, seed: int = 0,
                 prepare: Prepare | None = None):
        func = "TrainingBatches"
        self.fields = _check_fields(func, fields)
        self.count = len(next(iter(self.fields.values())))
        self.batch_size = checks.integer(func, "batch_size", batch_size, minimum=1)
        if self.batch_size > self.count:
            raise ValueError(
                f"{func}: argument 'batch_size' must be <= the number of examples {self.count}, got {self.batch_size}"
            )
        self.seed = checks.integer(func, "seed", seed, minimum=0)
        self.prepare = prepare
        self._epoch_order: tuple[int, np.ndarray] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return self.count // self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of the examples in epoch ``epoch``, int64 (count,)."""
        epoch = checks.integer("TrainingBatches.order", "epoch", epoch, minimum=0)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            self._epoch_order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.count))
        return self._epoch_order[1]

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """The batch of global step ``step`` (>= 0)."""
        step = checks.integer("TrainingBatches.batch", "step", step, minimum=0)
        epoch, position = divmod(step, self.steps_per_epoch)
        chosen = self.order(epoch)[position * self.batch_size : (position + 1) * self.batch_size]
        return _batch({k: v[chosen] for k, v in self.fields.items()}, np.ones(self.batch_size), self.prepare)

    def iterate(self, start_step: int = 0, num_steps: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Batches of steps start_step, start_step + 1, ...: ``num_steps`` of them,
        or without end if it is None."""
        func = "TrainingBatches.iterate"
        start_step = checks.integer(func, "start_step", start_step, minimum=0)
        if num_steps is not None:
            num_steps = checks.integer(func, "num_steps", num_steps, minimum=0)
        return self._steps(start_step, num_steps)

    def _steps(self, start_step: int, num_steps: int | None) -> Iterator[dict[str, np.ndarray]]:
        step = start_step
        while num_steps is None or step < start_step + num_steps:
            yield self.batch(step)
            step += 1


def evaluation_batches(fields: Mapping[str, np.ndarray], batch_size: int,
                       prepare: Prepare | None = None) -> Iterator[dict[str, np.ndarray]]:
    """ceil(count / batch_size) batches in order, the last padded with rows of
    zeros and weight 0 (see the module docstring)."""
    func = "evaluation_batches"
    fields = _check_fields(func, fields)
    batch_size = checks.integer(func, "batch_size", batch_size, minimum=1)
    return _evaluation(fields, batch_size, prepare)


def _evaluation(fields: dict[str, np.ndarray], batch_size: int, prepare: Prepare | None):
    count = len(next(iter(fields.values())))
    for start in range(0, count, batch_size):
        real = min(batch_size, count - start)
        padding = batch_size - real
        rows = {k: np.concatenate([v[start : start + real], np.zeros((padding,) + v.shape[1:], v.dtype)])
                for k, v in fields.items()}
        yield _batch(rows, np.concatenate([np.ones(real), np.zeros(padding)]), prepare)


_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _produce(source: Iterator, buffer: queue.Queue, stop: threading.Event) -> None:
    """Producer loop: moves items of ``source`` into ``buffer`` until exhausted or stopped."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in source:
            if not put(item):
                return
    except BaseException as error:  # handed to the consumer, which re-raises it
        put(_Failure(error))
        return
    put(_END)


class Prefetcher:
    """Iterates over ``source`` with up to ``size`` items produced ahead by a
    daemon thread. Use as a context manager or call :meth:`close`; closing (also
    on garbage collection) stops and joins the thread. An exception raised by
    ``source`` is re-raised by ``next()``."""

    def __init__(self, source: Iterable, size: int = 2):
        func = "Prefetcher"
        if not isinstance(source, Iterable):
            raise ValueError(f"{func}: argument 'source' must be iterable, got {type(source).__name__}")
        size = checks.integer(func, "size", size, minimum=1)
        self._source = iter(source)
        self._buffer: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._finished = False
        # The thread holds only the source, the queue and the event (not self), so an
        # abandoned Prefetcher is collected and its __del__ closes the thread.
        self._thread = threading.Thread(
            target=_produce, args=(self._source, self._buffer, self._stop), name="sphcnn-prefetch", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        while not self._finished:
            try:
                item = self._buffer.get(timeout=0.05)
            except queue.Empty:
                if not self._thread.is_alive() and self._buffer.empty():
                    self._finished = True  # stopped by close() from another thread
                continue
            if item is _END:
                self._finished = True
            elif isinstance(item, _Failure):
                self.close()
                raise item.error
            else:
                return item
        raise StopIteration

    def close(self) -> None:
        """Stop the producer thread and wait for it; further next() calls raise StopIteration."""
        self._finished = True
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._buffer.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)
        close_source = getattr(self._source, "close", None)
        if close_source is not None:
            close_source()

    @property
    def alive(self) -> bool:
        """Whether the producer thread is still running."""
        return self._thread.is_alive()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "_thread"):
            self.close()
