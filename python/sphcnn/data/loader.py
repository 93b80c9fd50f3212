"""Batches of spherical images for training and evaluation, and a prefetching
wrapper.

A batch is a dict of NumPy arrays:

- ``images``: float32 (B, n, n, 1, 1), pixel values 0..255 (spin 0, one channel,
  the layout of the sphcnn models);
- ``labels``: int32 (B,);
- ``weights``: float32 (B,), 1 for real examples, 0 for padding.

Training (:class:`TrainingBatches`): epoch e visits the examples in the order
``numpy.random.default_rng([seed, e]).permutation(count)``, in
``count // batch_size`` full batches (the incomplete last batch is dropped).
Global step s is batch s % steps_per_epoch of epoch s // steps_per_epoch, so
iteration can start at any step (resume) without producing the skipped batches.

Evaluation (:func:`evaluation_batches`): consecutive batches covering every
example once, in order; the last is padded to the full batch size with zero
images, label 0 and weight 0.

Prefetch (:class:`Prefetcher`): a daemon thread fills a small queue from any
iterator; ``close()`` stops and joins it; an exception of the producer is
raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from sphcnn_kernels import _validation as checks


def _check_arrays(func: str, images, labels) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"{func}: argument 'images' has shape {images.shape}; expected (count, n, n)")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"{func}: argument 'images' must hold real numbers, got dtype {images.dtype}")
    if labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{func}: argument 'labels' has shape {labels.shape} and dtype {labels.dtype}; expected "
            f"integer ({images.shape[0]},)"
        )
    return images, labels


def _batch(images: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "images": images.astype(np.float32)[..., None, None],
        "labels": labels.astype(np.int32),
        "weights": weights.astype(np.float32),
    }


class TrainingBatches:
    """Shuffled training batches by global step (see the module docstring).

    images: (count, n, n) (uint8 or float), labels: integer (count,), e.g. the
    ``images`` and ``labels`` of a :class:`~sphcnn.data.dataset.SphericalMnist`;
    batch_size: 1 .. count; seed: the shuffling seed.
    """

    def __init__(self, images, labels, batch_size: int, seed: int = 0):
        func = "TrainingBatches"
        self.images, self.labels = _check_arrays(func, images, labels)
        self.batch_size = checks.integer(func, "batch_size", batch_size, minimum=1)
        if self.batch_size > len(self.labels):
            raise ValueError(
                f"{func}: argument 'batch_size' must be <= the number of examples "
                f"{len(self.labels)}, got {self.batch_size}"
            )
        self.seed = checks.integer(func, "seed", seed, minimum=0)
        self._epoch_order: tuple[int, np.ndarray] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.labels) // self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of the examples in epoch ``epoch``, int64 (count,)."""
        epoch = checks.integer("TrainingBatches.order", "epoch", epoch, minimum=0)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            self._epoch_order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.labels)))
        return self._epoch_order[1]

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """The batch of global step ``step`` (>= 0)."""
        step = checks.integer("TrainingBatches.batch", "step", step, minimum=0)
        epoch, position = divmod(step, self.steps_per_epoch)
        chosen = self.order(epoch)[position * self.batch_size : (position + 1) * self.batch_size]
        return _batch(self.images[chosen], self.labels[chosen], np.ones(self.batch_size))

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


def evaluation_batches(images, labels, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """ceil(count / batch_size) batches in order, the last padded with weight 0
    (see the module docstring)."""
    func = "evaluation_batches"
    images, labels = _check_arrays(func, images, labels)
    batch_size = checks.integer(func, "batch_size", batch_size, minimum=1)
    return _evaluation(images, labels, batch_size)


def _evaluation(images: np.ndarray, labels: np.ndarray, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(labels), batch_size):
        real = min(batch_size, len(labels) - start)
        padding = batch_size - real
        yield _batch(
            np.concatenate([images[start : start + real], np.zeros((padding,) + images.shape[1:], images.dtype)]),
            np.concatenate([labels[start : start + real], np.zeros(padding, labels.dtype)]),
            np.concatenate([np.ones(real), np.zeros(padding)]),
        )


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
