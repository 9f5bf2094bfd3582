"""Seeded augmentation: an image's random draws are a pure function of (seed, epoch, index).

Fast checks at the loader level (the runs themselves: ``test_seeded_runs.py``).  Each fails on a
tree whose augmentations draw from an unseeded generator (FFCV 1.0.2's ops, torch's global RNG in
DataLoader workers).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from datamodules.seeded import Clock, SeededDataset, numba_helpers, sample_seed_py


def test_sample_seed_is_the_same_in_python_and_numba_and_mixes_every_input():
    sample_seed, read_clock = numba_helpers()
    for args in [(0, 0, 0), (7, 3, 11), (2**40, 99, 1_281_166)]:
        assert int(sample_seed(*args)) == sample_seed_py(*args)
    seeds = {sample_seed_py(s, e, i) for s in range(3) for e in range(3) for i in range(50)}
    assert len(seeds) == 3 * 3 * 50  # no collisions among neighbours
    clock = Clock(5, 2)
    assert tuple(read_clock(clock.address)) == (5, 2)
    clock.set_epoch(9)
    assert tuple(read_clock(clock.address)) == (5, 9)  # compiled code sees the new epoch


def _ffcv_images(path, clock, indices, batch_size, workers, epoch=0):
    """{index: image} of one pass over ``indices`` through the digits training ops."""
    from ffcv.loader import OrderOption
    from ffcv.transforms import ToTensor

    from datamodules.ffcv import guarded_loader_class, train_image_pipeline

    loader = guarded_loader_class()(
        str(path),
        batch_size=batch_size,
        num_workers=workers,
        order=OrderOption.SEQUENTIAL,
        indices=indices,
        pipelines={
            "image": [*train_image_pipeline("digits", 32, clock), ToTensor()],
            "label": None,
        },
    )
    loader.clock, loader.next_epoch = clock, epoch
    out = {}
    for (x,) in loader:
        out.update(zip(indices[len(out) : len(out) + len(x)], x.clone(), strict=True))
    return out


def test_ffcv_draws_depend_on_seed_epoch_and_index_only(digits_cache):
    """Worker count, batch size and position in the batch change nothing; the epoch and the seed
    change the draws; FFCV's unseeded ops gave two different images for the same call."""
    path = next(digits_cache.glob("*/train.beton"))
    idx = list(range(48))
    a = _ffcv_images(path, Clock(7), idx, 16, workers=1)
    b = _ffcv_images(path, Clock(7), idx[::-1], 12, workers=2)
    assert all(torch.equal(a[i], b[i]) for i in idx)
    later = _ffcv_images(path, Clock(7), idx, 16, workers=1, epoch=1)
    other = _ffcv_images(path, Clock(8), idx, 16, workers=1)
    assert sum(torch.equal(a[i], later[i]) for i in idx) < len(idx) // 4
    assert sum(torch.equal(a[i], other[i]) for i in idx) < len(idx) // 4


def _trainer(epoch):
    return SimpleNamespace(
        global_rank=0,
        world_size=1,
        current_epoch=epoch,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


def test_ffcv_datamodule_resumed_at_epoch_1_draws_as_the_uninterrupted_one(digits_cache):
    from datamodules.digits import DigitsDataModule

    def first_batch(dm):
        x, y = next(iter(dm.train_dataloader()))
        return x.clone(), y.clone()

    opts = dict(cache_dir=digits_cache, batch_size=32, num_workers=1, seed=3)
    dm = DigitsDataModule(**opts)
    dm.prepare_data(), dm.setup("fit")
    dm.trainer = _trainer(0)
    loader = dm.train_dataloader()
    epochs = []
    for epoch in range(2):
        dm.trainer.current_epoch = epoch
        x, y = next(iter(loader))
        epochs.append((x.clone(), y.clone()))
    resumed = DigitsDataModule(**opts)
    resumed.prepare_data(), resumed.setup("fit")
    resumed.trainer = _trainer(1)
    x1, y1 = first_batch(resumed)
    assert torch.equal(y1, epochs[1][1]) and torch.equal(x1, epochs[1][0])
    assert not torch.equal(epochs[0][0], epochs[1][0])


class _Draws(torch.utils.data.Dataset):
    """Each item is the transform's draw: what torch's RNG gives inside ``__getitem__``."""

    def __len__(self):
        return 40

    def __getitem__(self, i):
        return torch.rand(3)


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_draws_depend_on_seed_epoch_and_index_only(workers):
    from torch.utils.data import DataLoader

    from datamodules.seeded import EpochSampler

    ds = SeededDataset(_Draws(), seed=7)
    order = list(range(40))[::-1]
    sampler = EpochSampler(order, ds)
    loader = DataLoader(
        ds, sampler=sampler, batch_size=8, num_workers=workers, persistent_workers=workers > 0
    )
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        draws = torch.cat(list(loader))
        epochs.append(dict(zip(order, draws, strict=True)))
    ref = SeededDataset(_Draws(), seed=7)
    for epoch in range(2):
        ref.set_epoch(epoch)
        assert all(torch.equal(ref[i], epochs[epoch][i]) for i in range(40))
    assert not torch.equal(epochs[0][0], epochs[1][0])
    before = torch.get_rng_state()
    ref[3]
    assert torch.equal(before, torch.get_rng_state())  # the caller's RNG is left alone


def test_imagefolder_augmentation_is_seeded_per_sample(tmp_path):
    """The torchvision path: two datamodules with the same seed give the same augmented batch,
    with 0 or 2 workers; another epoch gives another."""
    from PIL import Image

    from datamodules.imagefolder import ImageFolderDataModule

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / c / f"{i}.png")

    def batch(workers, epoch):
        dm = ImageFolderDataModule(
            tmp_path, batch_size=8, num_workers=workers, resolution=16, seed=1
        )
        dm.trainer = _trainer(epoch)
        return next(iter(dm.train_dataloader()))[0]

    assert torch.equal(batch(0, 0), batch(2, 0))
    assert not torch.equal(batch(0, 0), batch(0, 1))
