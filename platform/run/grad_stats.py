"""Per-epoch gradient statistics of a few layers (``logging.grad_stats=true``).

Huang et al. 2016 (Deep Networks with Stochastic Depth, arXiv:1603.09382, Fig. 8) plot the mean
gradient magnitude of the first convolution per epoch, constant depth against stochastic depth:
with stochastic depth it stays larger, most visibly after each learning-rate drop. This records
that quantity — and the L2 norm — for the layers :func:`grad_layers` picks, as ``metrics.jsonl``
epoch keys ``grad/<layer>/mean_abs`` and ``grad/<layer>/l2`` (and to W&B through ``log_dict``);
``python -m platform.gradients`` plots them.

Cost: at each optimizer step one fused reduction per layer is added to on-device sums; nothing
leaves the device until the epoch's end (one ``tolist`` per epoch), so there is no per-step host
sync (benchmarks/RESULTS.md, ``python -m benchmarks grad_stats``).

What is measured is the gradient the optimizer applies: ``on_before_optimizer_step`` runs once per
optimizer step, after gradient accumulation (Lightning divides each micro-batch loss by the
accumulation count, so this is the accumulated mean gradient), after mixed precision's unscaling,
and under DDP after the all-reduce (so every rank holds the same values and no sync is needed). A
step whose gradient is not finite (a skipped fp16 step) is left out of the average; a layer whose
gradient is absent in a step (its block dropped by batch-mode stochastic depth) is averaged over
the steps where it had one.
"""

from __future__ import annotations

import re

import lightning as L
import torch
from torch import nn

PREFIX = "grad/"
STATS = ("mean_abs", "l2")
# direct children that are a family's stages: ResidualNet/HighwayNet/MBConvNet s1..sN, DenseNet blockN
_STAGE = re.compile(r"^(s|block)\d+$")


def grad_layers(model: nn.Module) -> dict[str, torch.Tensor]:
    """{name: weight} of the recorded layers, in forward order: ``first_conv`` (the first Conv2d),
    each stage's first convolution (named after the stage: ``s1``, ``s2``, ...; the first block's
    first conv, as blocks register their convs before their shortcut), and ``classifier`` (the
    last Linear). A family without such stages gets first_conv and classifier only."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    layers: dict[str, torch.Tensor] = {}
    if convs:
        layers["first_conv"] = convs[0].weight
    for name, child in model.named_children():
        if _STAGE.match(name):
            conv = next((m for m in child.modules() if isinstance(m, nn.Conv2d)), None)
            if conv is not None and conv.weight is not layers.get("first_conv"):
                layers[name] = conv.weight
    if linears:
        layers["classifier"] = linears[-1].weight
    return layers


class GradStats(L.Callback):
    """Accumulates, per recorded layer, sum over optimizer steps of mean|g| and ||g||_2 (and the
    count of steps that had a finite gradient) on the device; logs their means at epoch end."""

    def __init__(self) -> None:
        self.layers: dict[str, torch.Tensor] = {}
        self.sums: torch.Tensor | None = None  # (layers, 3): mean_abs, l2, steps counted

    def reset(self, model: nn.Module, device: torch.device) -> None:
        self.layers = grad_layers(model)
        self.sums = torch.zeros(len(self.layers), 3, device=device)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a mid-epoch resume gets no on_train_epoch_start
        self.reset(getattr(pl_module, "model", pl_module), pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.reset(getattr(pl_module, "model", pl_module), pl_module.device)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.accumulate()

    @torch.no_grad()
    def accumulate(self) -> None:
        """Add this step's statistics to the on-device sums (no host sync)."""
        if self.sums is None:
            return
        for i, w in enumerate(self.layers.values()):
            g = w.grad
            if g is None:
                continue
            g = g.detach().float()
            stats = torch.stack((g.abs().mean(), torch.linalg.vector_norm(g)))
            ok = torch.isfinite(stats).all()
            self.sums[i, :2] += torch.where(ok, stats, torch.zeros_like(stats))
            self.sums[i, 2] += ok.float()

    def means(self) -> dict[str, float]:
        """``{grad/<layer>/<stat>: mean over the steps so far}`` (one host sync)."""
        values = {}
        sums = self.sums.tolist() if self.sums is not None else []
        for name, (mean_abs, l2, n) in zip(self.layers, sums, strict=True):
            if n > 0:
                values[f"{PREFIX}{name}/mean_abs"] = mean_abs / n
                values[f"{PREFIX}{name}/l2"] = l2 / n
        return values

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = self.means()
        if values:  # the gradient is already all-reduced under DDP: no sync_dist
            pl_module.log_dict(values, on_step=False, on_epoch=True)
