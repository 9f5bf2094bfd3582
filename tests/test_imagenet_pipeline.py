"""The ImageNet path end to end on a generated tree: writer -> data=imagenet -> 2-rank DDP on CPU."""

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import run_cli

pytestmark = pytest.mark.slow


def _tree(root, classes=4, per_class=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 3)):
        for c in range(classes):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True)
            for i in range(n):
                h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                    d / f"{i}.JPEG"
                )
    return root


class _FakeTrainer:
    def __init__(self, world_size):
        self.world_size, self.current_epoch = world_size, 0
        self.strategy = type("S", (), {"root_device": torch.device("cpu")})()


def _rank_ids(rank, world, path, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from datamodules.ffcv import FFCVDataModule

    # every training image is a constant colour equal to its index, so decoded pixels name it
    dm = FFCVDataModule(
        path / "train.beton",
        path / "val.beton",
        batch_size=8,
        num_workers=1,
        resolution=8,
        augment="none",
        drop_last=False,
    )
    dm.trainer = _FakeTrainer(world)
    dm.setup("fit")
    seen = [int(v) for x, _ in dm.train_dataloader() for v in x[:, 0, 0, 0].tolist()]
    torch.save(seen, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_each_ddp_rank_reads_a_disjoint_half_of_the_training_set(tmp_path):
    from datamodules.beton import write_beton

    class Indexed:
        def __len__(self):
            return 64

        def __getitem__(self, i):
            return np.full((8, 8, 3), i, np.uint8), i % 4

    write_beton(tmp_path / "train.beton", Indexed())
    write_beton(tmp_path / "val.beton", Indexed())
    mp.spawn(_rank_ids, args=(2, tmp_path, 29517, tmp_path), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert len(r0) == len(r1) == 32
    assert not set(r0) & set(r1) and set(r0) | set(r1) == set(range(64))


def test_written_imagenet_tree_trains_under_2_rank_ddp(tmp_path):
    tree = _tree(tmp_path / "tree")
    out = tmp_path / "ffcv"
    proc = run_cli("datamodules.write", str(tree), str(out), "--num-workers", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"] == {"train": 48, "val": 12} and meta["num_classes"] == 4
    proc = run_cli(
        "platform.train",
        "data=imagenet",
        f"data.path={out}",
        "data.resolution=32",
        "data.val_resolution=32",
        "data.batch_size=8",
        "data.num_workers=1",
        "model=resnet18",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=1",
        "logging.wandb=disabled",
        "logging.progress_bar=false",
        f"run.root={tmp_path / 'runs'}",
        "run.name=in",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((tmp_path / "runs" / "in" / "summary.json").read_text())
    assert (
        summary["status"] == "finished"
        and summary["world_size"] == 2
        and summary["data"] == "imagenet"
    )
