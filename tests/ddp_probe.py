"""Run ``platform.run.train.train``, save every rank's final weights: ``python tests/ddp_probe.py OUT k=v ...``.

Started with PYTHONPATH=<repo root> (so ``platform`` is ours); Lightning's DDP launcher re-runs
this same command line for the other ranks.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from torch import nn

from models import Entry, ModelInfo, register_table
from platform.run.config import load_config
from platform.run.train import train


def ddp_probe_net(num_classes: int = 10, **_) -> nn.Module:
    """No BatchNorm: with CPU DDP (no SyncBatchNorm there) one process and two must agree exactly."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


register_table(
    [
        Entry(
            "ddp_probe_net",
            ddp_probe_net,
            ModelInfo(paper="test model", table="-", resolution=32, num_classes=10, family="test"),
        )
    ],
    free_knobs={"num_classes", "drop_path_rate", "dropout", "zero_init_residual"},
)


out = Path(sys.argv[1])


class DumpWeights(L.Callback):
    def on_train_end(self, trainer, module):
        torch.save(module.model.state_dict(), out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    out.mkdir(parents=True, exist_ok=True)
    train(load_config(sys.argv[2:]), callbacks=[DumpWeights()])
