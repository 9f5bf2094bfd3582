"""Framework overhead: ``ClassificationModule`` under the Lightning Trainer vs a plain PyTorch loop.

    python -m benchmarks overhead [--model resnet20] [--resolution 32] [--batch 64] [--steps 40]
                                  [--warmup-steps 5] [--reps 3] [--precision 32-true|bf16-mixed]
                                  [--channels-last] [--quick]
    # on a GPU, the issue's target setting:
    python -m benchmarks overhead --model resnet50 --resolution 224 --batch 256 --precision bf16-mixed --channels-last

Three contenders train the same model on the same data for ``--steps`` steps, each from a fresh
``ClassificationModule`` built from the same seed and the default ``OptimConfig`` /
``ScheduleConfig`` (SGD + Nesterov, weight decay on weights only, per-step LambdaLR):

* ``lightning``: ``L.Trainer(max_steps=N, logger=False, no checkpointing / progress bar / model
  summary / validation).fit(module, loader)``: the module's own ``training_step`` (its logging and
  torchmetrics updates included), Lightning's optimizer loop, precision plugin and hooks;
* ``plain``: a hand-written loop doing the same work: ``module._augment``, ``module(x)`` (the
  channels_last conversion included), ``classification_loss``, ``zero_grad``/``backward``/``step``,
  the scheduler step, and the same ``train_loss``/``train_top1`` metric updates; the optimizer and
  scheduler come from the module's ``configure_optimizers`` (given the same step count);
* ``plain_minimal``: the same loop without the metric updates (what "just PyTorch" costs).

Precision: ``bf16-mixed`` is ``torch.autocast(<device>, torch.bfloat16)`` around forward and loss in
the plain loops, which is what Lightning's plugin does.  Data: a pool of 4 pre-built batches on the
device, served whole by a ``DataLoader(batch_size=None)`` to all three, so data costs the same.

Timing: a timestamp at the end of every step (Lightning: ``on_train_batch_end``; the loops: after
the scheduler step); time per step = (last stamp - stamp at the end of warm-up) / steps timed, with
a device synchronisation at both ends.  Repetitions are interleaved (lightning, plain,
plain_minimal, lightning, ...); medians over repetitions.  ``ratio`` = lightning / plain (the
target: <= 1.03 on GPU at ResNet-50, <= 1.05 on CPU with a small model); ``ratio_vs_minimal`` =
lightning / plain_minimal.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from contextlib import nullcontext
from types import SimpleNamespace

import torch

from benchmarks import common
from benchmarks.common import add_common_args, apply_common, median, sync, write_result

PRECISIONS = ("32-true", "bf16-mixed")


class _Batches(torch.utils.data.Dataset):
    def __init__(self, pool: list, length: int) -> None:
        self.pool, self.length = pool, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        return self.pool[i % len(self.pool)]


def make_loader(
    batch: int, resolution: int, num_classes: int, steps: int, dev: torch.device, pool: int = 4
):
    g = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(batch, 3, resolution, resolution, generator=g).to(dev),
            torch.randint(0, num_classes, (batch,), generator=g).to(dev),
        )
        for _ in range(pool)
    ]
    return torch.utils.data.DataLoader(
        _Batches(batches, steps), batch_size=None, shuffle=False, num_workers=0
    )


def make_module(a):
    from platform.run.module import ClassificationModule

    torch.manual_seed(0)
    return ClassificationModule(
        a.model,
        num_classes=a.num_classes,
        max_epochs=1,
        channels_last=a.channels_last,
        global_batch_size=a.batch,
    )


def per_step(stamps: list[float], warmup: int) -> float:
    """Mean time per step after ``warmup`` steps, from end-of-step timestamps."""
    return (stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup)


def run_lightning(a, loader, dev: torch.device) -> list[float]:
    import lightning as L

    stamps: list[float] = []
    last = {a.warmup_steps - 1, a.steps - 1}

    class StepTimer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx in last:
                sync()
            stamps.append(common.clock())

    trainer = L.Trainer(
        accelerator=dev.type,
        devices=1,
        precision=a.precision,
        max_steps=a.steps,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[StepTimer()],
    )
    trainer.fit(make_module(a), train_dataloaders=loader)
    return stamps


def run_plain(a, loader, dev: torch.device, metrics: bool) -> list[float]:
    from platform.run.module import classification_loss

    module = make_module(a).to(dev)
    module.trainer = SimpleNamespace(
        estimated_stepping_batches=a.steps
    )  # what configure_optimizers reads
    conf = module.configure_optimizers()
    module.trainer = None
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    autocast = (
        torch.autocast(dev.type, dtype=torch.bfloat16)
        if a.precision == "bf16-mixed"
        else nullcontext()
    )
    smoothing = module.optim_cfg.label_smoothing
    module.train()
    stamps: list[float] = []
    last = {a.warmup_steps - 1, a.steps - 1}
    for i, (images, targets) in enumerate(loader):
        if i >= a.steps:
            break
        with autocast:
            if metrics:
                inputs, soft_or_hard = module._augment(images, targets)
            else:
                inputs, soft_or_hard = images, targets
            logits = module(inputs)
            loss = classification_loss(logits, soft_or_hard, smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if metrics:
            module.train_loss(loss.detach(), weight=targets.numel())
            module.train_top1(logits.detach(), targets)
        if i in last:
            sync()
        stamps.append(common.clock())
    return stamps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks overhead", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", default="resnet20")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=40, help="steps per run, warm-up included")
    p.add_argument(
        "--warmup-steps", type=int, default=5, help="steps of each run left out of the timing"
    )
    p.add_argument(
        "--reps", type=int, default=3, help="interleaved runs per contender (median reported)"
    )
    p.add_argument("--precision", choices=PRECISIONS, default="32-true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test size: resnet20, 16 px, batch 4, 6 steps, 1 rep",
    )
    add_common_args(p)
    a = p.parse_args(argv)
    apply_common(a)
    if a.quick:
        a.model, a.resolution, a.batch, a.steps, a.warmup_steps, a.reps = "resnet20", 16, 4, 6, 2, 1
    if not 1 <= a.warmup_steps < a.steps:
        p.error("--warmup-steps must be at least 1 and below --steps")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = (
            True  # set once, for every contender (Lightning keeps the current value)
        )
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "platform.module"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    loader = make_loader(a.batch, a.resolution, a.num_classes, a.steps, dev)
    contenders = {
        "lightning": lambda: run_lightning(a, loader, dev),
        "plain": lambda: run_plain(a, loader, dev, metrics=True),
        "plain_minimal": lambda: run_plain(a, loader, dev, metrics=False),
    }
    raw: dict[str, list[list[float]]] = {k: [] for k in contenders}
    for _rep in range(a.reps):
        for name, fn in contenders.items():
            raw[name].append(fn())
    step_s = {k: [per_step(s, a.warmup_steps) for s in v] for k, v in raw.items()}
    med = {k: median(v) for k, v in step_s.items()}
    ratio, ratio_min = med["lightning"] / med["plain"], med["lightning"] / med["plain_minimal"]
    print(
        f"{a.model} at {a.resolution} px, batch {a.batch}, "
        f"{a.precision}{', channels_last' if a.channels_last else ''}"
        f" on {dev}: {a.steps - a.warmup_steps} timed steps x {a.reps} interleaved runs"
    )
    for k, v in med.items():
        print(f"  {k:14s} {v * 1e3:9.2f} ms/step  {a.batch / v:9.1f} images/s")
    print(
        f"  ratio lightning/plain {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%)   "
        f"lightning/plain_minimal {ratio_min:.3f} ({100 * (ratio_min - 1):+.1f}%)"
    )
    path = write_result(
        "overhead",
        vars(a),
        {
            "device": str(dev),
            "step_s": med,
            "raw": {"step_s_per_run": step_s, "stamps": raw},
            "ratio": ratio,
            "overhead_pct": 100 * (ratio - 1),
            "ratio_vs_minimal": ratio_min,
        },
        argv,
        a.results_dir,
    )
    print(f"wrote {path}")
    return 0
