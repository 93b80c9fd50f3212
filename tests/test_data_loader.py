"""Training and evaluation batches and the prefetching thread."""

import threading
import time

import numpy as np
import pytest

from sphcnn.tasks import batches
from sphcnn.tasks.batches import Prefetcher
from sphcnn.tasks.mnist.task import prepare_batch

COUNT, N = 22, 4


def examples():
    """Image i is constant i (so batches can be traced back), label i % 10."""
    images = np.broadcast_to(np.arange(COUNT, dtype=np.uint8)[:, None, None], (COUNT, N, N)).copy()
    return images, (np.arange(COUNT) % 10).astype(np.uint8)


def TrainingBatches(images, labels, batch_size, seed=0):
    return batches.TrainingBatches({"images": images, "labels": labels}, batch_size, seed=seed, prepare=prepare_batch)


def evaluation_batches(images, labels, batch_size):
    return batches.evaluation_batches({"images": images, "labels": labels}, batch_size, prepare=prepare_batch)


def ids(batch):
    return batch["images"][:, 0, 0, 0, 0].astype(int)


def test_training_batches_shuffle_each_epoch_and_drop_the_remainder():
    images, labels = examples()
    loader = TrainingBatches(images, labels, batch_size=5, seed=3)
    assert loader.steps_per_epoch == 4  # 22 // 5; 2 examples dropped per epoch
    batches = list(loader.iterate(num_steps=12))
    first = batches[0]
    assert first["images"].dtype == np.float32 and first["images"].shape == (5, N, N, 1, 1)
    assert first["labels"].dtype == np.int32 and first["weights"].dtype == np.float32
    np.testing.assert_array_equal(first["weights"], np.ones(5))
    epochs = []
    for epoch in range(3):
        seen = np.concatenate([ids(b) for b in batches[4 * epoch : 4 * epoch + 4]])
        order = np.random.default_rng([3, epoch]).permutation(COUNT)
        np.testing.assert_array_equal(seen, order[:20])  # the epoch's permutation, last 2 dropped
        assert len(set(seen)) == 20
        epochs.append(seen)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    for batch in batches:
        np.testing.assert_array_equal(batch["labels"], ids(batch) % 10)


def test_training_batches_are_deterministic_and_seeded():
    images, labels = examples()
    run = [ids(b) for b in TrainingBatches(images, labels, 4, seed=1).iterate(num_steps=10)]
    again = [ids(b) for b in TrainingBatches(images, labels, 4, seed=1).iterate(num_steps=10)]
    other = [ids(b) for b in TrainingBatches(images, labels, 4, seed=2).iterate(num_steps=10)]
    assert all(np.array_equal(a, b) for a, b in zip(run, again))
    assert not all(np.array_equal(a, b) for a, b in zip(run, other))


def test_resume_at_a_global_step_equals_continuing():
    images, labels = examples()
    loader = TrainingBatches(images, labels, 5, seed=0)
    straight = list(loader.iterate(num_steps=15))
    resumed = list(TrainingBatches(images, labels, 5, seed=0).iterate(start_step=6, num_steps=9))
    for a, b in zip(straight[6:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # a far step is computed directly (epoch = step // 4, position = step % 4), nothing before it is produced
    step = 10**9 + 2
    far = next(loader.iterate(start_step=step))
    order = np.random.default_rng([0, step // 4]).permutation(COUNT)
    np.testing.assert_array_equal(ids(far), order[10:15])


def test_evaluation_batches_cover_everything_once_with_padding():
    images, labels = examples()
    batches = list(evaluation_batches(images, labels, batch_size=8))
    assert len(batches) == 3 and all(b["images"].shape == (8, N, N, 1, 1) for b in batches)
    weights = np.concatenate([b["weights"] for b in batches])
    np.testing.assert_array_equal(weights, np.r_[np.ones(COUNT), np.zeros(2)])
    np.testing.assert_array_equal(np.concatenate([ids(b) for b in batches])[:COUNT], np.arange(COUNT))
    last = batches[-1]
    assert np.all(last["images"][6:] == 0) and np.all(last["labels"][6:] == 0)
    np.testing.assert_array_equal(np.concatenate([b["labels"] for b in batches])[:COUNT], labels)
    assert len(list(evaluation_batches(images, labels, batch_size=11))) == 2  # no padding needed


def test_loader_argument_errors():
    images, labels = examples()
    with pytest.raises(ValueError, match="'batch_size' must be <= the number of examples 22, got 23"):
        TrainingBatches(images, labels, 23)
    with pytest.raises(ValueError, match=r"same first axis.*\{'images': 22, 'labels': 21\}"):
        TrainingBatches(images, labels[:21], 4)
    with pytest.raises(ValueError, match=r"'fields' must not hold 'weights'"):
        batches.evaluation_batches({"images": images, "weights": labels}, 4)
    with pytest.raises(ValueError, match=r"'fields' must be a non-empty mapping"):
        batches.TrainingBatches({}, 4)
    with pytest.raises(ValueError, match="'start_step' must be >= 0"):
        TrainingBatches(images, labels, 4).iterate(start_step=-1)
    with pytest.raises(ValueError, match="'size' must be >= 1"):
        Prefetcher(range(3), size=0)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "sphcnn-prefetch"]


def test_prefetcher_yields_everything_in_order():
    images, labels = examples()
    with Prefetcher(evaluation_batches(images, labels, 5)) as batches:
        got = [ids(b) for b in batches]
    expected = [ids(b) for b in evaluation_batches(images, labels, 5)]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)) and len(got) == len(expected)


def test_prefetcher_close_stops_the_thread_of_an_endless_source():
    images, labels = examples()
    before = len(prefetch_threads())
    batches = Prefetcher(TrainingBatches(images, labels, 5).iterate(), size=2)
    assert len(next(batches)["labels"]) == 5
    time.sleep(0.05)  # the producer now blocks on the full queue
    assert batches.alive and len(prefetch_threads()) == before + 1
    start = time.perf_counter()
    batches.close()
    assert time.perf_counter() - start < 1.0
    assert not batches.alive and len(prefetch_threads()) == before
    with pytest.raises(StopIteration):
        next(batches)


def test_prefetcher_is_closed_when_abandoned():
    images, labels = examples()
    before = len(prefetch_threads())
    batches = Prefetcher(TrainingBatches(images, labels, 5).iterate())
    next(batches)
    del batches
    deadline = time.monotonic() + 2
    while len(prefetch_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(prefetch_threads()) == before


def test_prefetcher_reraises_producer_errors():
    def source():
        yield 1
        yield 2
        raise RuntimeError("disk on fire")

    batches = Prefetcher(source())
    assert next(batches) == 1 and next(batches) == 2
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(batches)
    assert not batches.alive
    with pytest.raises(StopIteration):
        next(batches)
