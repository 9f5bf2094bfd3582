"""Class-aware (label-balanced) sampling: the pure draw, sharding, the torch Sampler, the FFCV order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from datamodules.sampling import (
    ClassAwareSampler,
    ClassLists,
    class_aware_indices,
    class_aware_order,
    shard,
)

# 10 classes whose sizes span 1:100 (10 ... 1000 examples), scattered over the index range.
SIZES = np.array([10, 20, 30, 50, 80, 120, 200, 350, 600, 1000])


def imbalanced_labels(seed: int = 0) -> np.ndarray:
    labels = np.repeat(np.arange(len(SIZES)), SIZES)
    return np.random.default_rng(seed).permutation(labels)


LABELS = imbalanced_labels()
N, C = len(LABELS), len(SIZES)  # 2460 examples, 10 classes


# --------------------------------------------------------------------------- the pure draw
@pytest.mark.parametrize("num_samples", [None, 2455, 37])
def test_class_counts_are_balanced_within_one_per_epoch(num_samples):
    """Classes come from a reshuffled class list, one pass after another, each epoch starting a
    fresh pass: every complete pass holds each class exactly once, so per-epoch counts are
    num_samples // C or num_samples // C + 1.  That is exact, not statistical -- independent
    uniform class picks would give counts spread by about +-2 sqrt(num_samples / C) (about 30 here)."""
    for epoch in range(4):
        draw = class_aware_indices(LABELS, num_samples, seed=3, epoch=epoch)
        m = N if num_samples is None else num_samples
        assert draw.shape == (m,) and draw.dtype == np.int64
        assert draw.min() >= 0 and draw.max() < N
        classes = LABELS[draw]
        counts = np.bincount(classes, minlength=C)
        assert counts.max() - counts.min() <= 1 and set(counts) <= {m // C, m // C + 1}
        for k in range(m // C):  # each full pass over the class list: every class once
            assert sorted(classes[k * C : (k + 1) * C]) == list(range(C))


def test_within_a_class_examples_are_drawn_without_replacement_until_exhausted():
    """A class's draws, concatenated over epochs 0, 1, 2, ..., come in consecutive blocks of
    len(class) that are each a permutation of the class (its list is consumed, then reshuffled;
    the list carries over epoch boundaries).  The 1000-example class gets 246 draws per epoch,
    so its first block spans five epochs; the 10-example class cycles ~25 times per epoch."""
    draws = np.concatenate([class_aware_indices(LABELS, None, seed=1, epoch=e) for e in range(6)])
    for c, size in enumerate(SIZES):
        members = np.flatnonzero(LABELS == c)
        of_c = draws[LABELS[draws] == c]
        assert len(of_c) >= size
        for k in range(len(of_c) // size):
            assert sorted(of_c[k * size : (k + 1) * size]) == members.tolist(), (c, k)
        reshuffled = [tuple(of_c[k * size : (k + 1) * size]) for k in range(len(of_c) // size)]
        if c == 0:  # the small class's passes really are reshuffled, not repeated
            assert len(set(reshuffled)) > len(reshuffled) // 2


def test_deterministic_in_seed_and_epoch_and_different_across_epochs():
    a = class_aware_indices(LABELS, None, seed=5, epoch=2)
    assert np.array_equal(a, class_aware_indices(LABELS, None, seed=5, epoch=2))
    assert np.array_equal(
        a, class_aware_indices(ClassLists.from_labels(LABELS), None, seed=5, epoch=2)
    )
    assert not np.array_equal(a, class_aware_indices(LABELS, None, seed=5, epoch=3))
    assert not np.array_equal(a, class_aware_indices(LABELS, None, seed=6, epoch=2))
    # label values need not be 0..C-1; a class with one example is drawn every pass
    odd = np.array([7, 7, 7, 42, -1, 7])
    d = class_aware_indices(odd, 9, seed=0, epoch=0)
    assert np.bincount(np.searchsorted([-1, 7, 42], odd[d])).tolist() == [3, 3, 3]
    with pytest.raises(ValueError):
        class_aware_indices(np.array([], np.int64), 4, 0, 0)


# --------------------------------------------------------------------------- sharding
def test_shards_are_disjoint_equal_and_their_union_is_the_single_process_draw():
    draw = class_aware_indices(LABELS, 2460, seed=0, epoch=1)
    shards = [shard(draw, r, 2) for r in range(2)]
    assert [len(s) for s in shards] == [1230, 1230]
    assert sorted(np.concatenate(shards).tolist()) == sorted(draw.tolist())  # as a multiset
    # odd length: truncated to an equal share per rank (the last draw is dropped), no padding
    odd = draw[:2459]
    shards = [shard(odd, r, 2) for r in range(2)]
    assert [len(s) for s in shards] == [1229, 1229]
    assert sorted(np.concatenate(shards).tolist()) == sorted(odd[:2458].tolist())
    with pytest.raises(ValueError):
        shard(draw, 2, 2)


# --------------------------------------------------------------------------- torch Sampler
def test_sampler_length_iteration_set_epoch_and_ranks():
    s = ClassAwareSampler(torch.as_tensor(LABELS), seed=4)  # no process group: rank 0 of 1
    assert (s.rank, s.world_size, len(s)) == (0, 1, N)
    first = list(s)
    assert first == class_aware_indices(LABELS, None, seed=4, epoch=0).tolist() and first == list(s)
    s.set_epoch(1)
    second = list(s)
    assert second == class_aware_indices(LABELS, None, seed=4, epoch=1).tolist() and second != first

    ranks = [
        ClassAwareSampler(LABELS, num_samples=1001, seed=4, rank=r, world_size=2) for r in range(2)
    ]
    for r in ranks:
        r.set_epoch(1)
    assert [len(r) for r in ranks] == [500, 500] == [len(list(r)) for r in ranks]
    union = sorted(list(ranks[0]) + list(ranks[1]))
    assert union == sorted(class_aware_indices(LABELS, 1001, seed=4, epoch=1)[:1000].tolist())

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(LABELS)),
        sampler=ClassAwareSampler(LABELS, num_samples=200),
        batch_size=50,
    )
    seen = torch.cat([b[0] for b in loader])
    assert len(seen) == 200 and torch.bincount(seen, minlength=C).tolist() == [20] * C


# --------------------------------------------------------------------------- FFCV order
def fake_loader(labels, *, indices=None, distributed=False, seed=0):
    """What a traversal order reads of an ffcv Loader: indices, seed, distributed, reader."""
    indices = np.arange(len(labels), dtype="uint64") if indices is None else np.asarray(indices)
    reader = SimpleNamespace(field_names=["image", "label"], metadata={"f1": np.asarray(labels)})
    return SimpleNamespace(indices=indices, seed=seed, distributed=distributed, reader=reader)


def test_ffcv_order_shards_across_ranks_and_respects_indices():
    subset = np.flatnonzero(LABELS != 9)[::2].astype("uint64")  # a subset without class 9
    Order = class_aware_order(num_samples=1000)
    single = Order(fake_loader(LABELS, indices=subset, seed=2)).sample_order(3)
    assert len(single) == 1000 and set(single.tolist()) <= set(subset.tolist())
    assert set(np.bincount(LABELS[single.astype(np.int64)], minlength=9)[:9]) == {111, 112}
    ranks = [
        Order(fake_loader(LABELS, indices=subset, seed=2, distributed=True), rank=r, world_size=2)
        for r in range(2)
    ]
    parts = [o.sample_order(3) for o in ranks]
    assert [len(p) for p in parts] == [500, 500]
    assert sorted(np.concatenate(parts).tolist()) == sorted(single.tolist())
    assert np.array_equal(parts[0], single[0::2]) and np.array_equal(parts[1], single[1::2])
    with pytest.raises(
        RuntimeError, match="torch.distributed"
    ):  # distributed, but no process group
        Order(fake_loader(LABELS, distributed=True))
    default = class_aware_order()(fake_loader(LABELS, indices=subset)).sample_order(0)
    assert len(default) == len(subset)
    from datamodules.sampling import ClassAwareOrder  # keywords override the class attributes

    assert len(ClassAwareOrder(fake_loader(LABELS), num_samples=30).sample_order(0)) == 30


class Squares:
    """Image i is filled with the value i; labels are imbalanced 2 : 6 : 16."""

    labels = [0] * 2 + [1] * 6 + [2] * 16

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return np.full((4, 4, 3), i, np.uint8), self.labels[i]


def test_ffcv_loader_with_class_aware_order(tmp_path):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader

    from datamodules.beton import write_beton
    from datamodules.sampling import ClassAwareOrder

    path = write_beton(tmp_path / "train.beton", Squares())
    loader = Loader(
        str(path),
        batch_size=6,
        num_workers=1,
        order=ClassAwareOrder,
        seed=1,
        pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()]},
    )
    assert len(loader) == 4
    labels = np.array(Squares.labels)
    for epoch in range(2):
        expected = loader.traversal_order.sample_order(epoch)
        images, seen = zip(
            *[(im[:, 0, 0, 0].copy(), lab[:, 0].copy()) for im, lab in loader], strict=False
        )
        images, seen = np.concatenate(images), np.concatenate(seen)
        assert images.tolist() == expected.tolist()  # the examples the order chose, in its order
        assert seen.tolist() == labels[expected.astype(np.int64)].tolist()
        assert np.bincount(seen).tolist() == [8, 8, 8]  # 24 draws from classes sized 2, 6, 16
