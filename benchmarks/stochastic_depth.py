"""Stochastic depth as Huang et al. ran it: what skipping whole blocks saves, and what DDP pays.

    python -m benchmarks stochastic_depth [--model resnet110] [--resolution 32] [--batch 64]
                                          [--reps 7] [--rate 0.5] [--ddp-model resnet20]
                                          [--ddp-reps 5] [--no-ddp] [--quick]

Part 1, one process: a training step (forward, cross-entropy, backward, SGD step) of ``--model``
with ``drop_path_mode=batch`` at ``--rate`` (= 1 - p_L; Huang et al.'s linear rule, their
recipe) against the same model without stochastic depth, on the same batch. Every step of the
stochastic-depth contender draws a new set of dropped blocks from (seed, step) exactly as
``ClassificationModule`` does (``models.set_drop_path_step``). Steps are interleaved (sd, none,
sd, none, ...) after warm-up; ``ratio`` = median(sd) / median(none). Huang et al. (Table 2)
report "a consistently 25% speed-up" (ratio ~0.75); with the l/L rule the expected share of
residual blocks run is 1 - rate * (L + 1) / (2L), the stem and head are always run.

Part 2, two gloo ranks (CPU DDP): a training step of ``--ddp-model`` (no stochastic depth)
under ``DistributedDataParallel`` with ``find_unused_parameters`` off and on, interleaved, the
cost the platform pays only when batch-mode stochastic depth is on (``platform.run.train.ddp_strategy``).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile

import torch
import torch.nn.functional as F

from benchmarks.common import add_common_args, apply_common, interleaved, median, write_result


def _step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int | None):
    import models

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    state = {"step": 0}

    def step() -> None:
        if seed is not None:
            models.set_drop_path_step(model, seed, state["step"])
        state["step"] += 1
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def single_process(a: argparse.Namespace) -> dict:
    import models

    torch.manual_seed(0)
    info = models.model_info(a.model)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution)
    y = torch.randint(0, info.num_classes, (a.batch,))
    sd = models.create_model(a.model, drop_path_rate=a.rate, drop_path_mode="batch").train()
    none = models.create_model(a.model).train()
    rates = [m.p for m in sd.modules() if isinstance(m, models.DropPath)]
    n_blocks = len(sd.block_sites) if hasattr(sd, "block_sites") else len(rates)
    times = interleaved(
        {"sd": _step_fn(sd, x, y, seed=0), "none": _step_fn(none, x, y, seed=None)},
        reps=a.reps,
        warmup=2,
    )
    ratio = median(times["sd"]) / median(times["none"])
    return {
        "model": a.model,
        "rate": a.rate,
        "blocks": n_blocks,
        "expected_block_share": 1 - sum(rates) / n_blocks,
        "median_s": {k: median(v) for k, v in times.items()},
        "raw_s": times,
        "ratio": ratio,
    }


def _ddp_worker(rank: int, port: int, a: argparse.Namespace, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import models

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(rank)
    x = torch.randn(a.ddp_batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.ddp_batch,))
    fns = {}
    for name, find in (("off", False), ("on", True)):
        torch.manual_seed(0)
        net = DDP(
            models.create_model(a.ddp_model, num_classes=10).train(), find_unused_parameters=find
        )
        fns[name] = _step_fn(net, x, y, seed=None)
    times = interleaved(
        fns, reps=a.ddp_reps, warmup=2
    )  # wall clock: common.clock is set per process
    if rank == 0:
        torch.save(times, out)
    dist.destroy_process_group()


def ddp_find_unused(a: argparse.Namespace) -> dict:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "times.pt")
        mp.spawn(_ddp_worker, args=(port, a, out), nprocs=2, join=True)
        times = torch.load(out)
    return {
        "model": a.ddp_model,
        "batch_per_rank": a.ddp_batch,
        "ranks": 2,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "raw_s": times,
        "ratio_on_vs_off": statistics.median(times["on"]) / statistics.median(times["off"]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks stochastic_depth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="resnet110")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument(
        "--rate", type=float, default=0.5, help="drop_path_rate = 1 - p_L (Huang et al.: 0.5)"
    )
    p.add_argument("--ddp-model", default="resnet20")
    p.add_argument("--ddp-batch", type=int, default=32)
    p.add_argument("--ddp-reps", type=int, default=5)
    p.add_argument("--no-ddp", action="store_true", help="skip part 2 (the two-rank DDP timing)")
    p.add_argument(
        "--quick", action="store_true", help="smoke size: resnet20, batch 8, 1 rep, 2 DDP reps"
    )
    add_common_args(p)
    a = p.parse_args(argv)
    if a.quick:
        a.model, a.batch, a.reps, a.ddp_batch, a.ddp_reps = "resnet20", 8, 1, 4, 1
    apply_common(a)
    result = {"single": single_process(a)}
    s = result["single"]
    print(
        f"{s['model']} train step, batch mode rate {s['rate']} vs no stochastic depth: "
        f"{s['median_s']['sd'] * 1e3:.1f} ms / {s['median_s']['none'] * 1e3:.1f} ms = "
        f"ratio {s['ratio']:.3f} "
        f"(expected share of blocks run {s['expected_block_share']:.3f})",
        flush=True,
    )
    result["ddp"] = None
    if not a.no_ddp:
        result["ddp"] = d = ddp_find_unused(a)
        print(
            f"DDP 2 gloo ranks, {d['model']}: find_unused_parameters on/off = "
            f"{d['ratio_on_vs_off']:.3f} "
            f"({d['median_s']['on'] * 1e3:.1f} / {d['median_s']['off'] * 1e3:.1f} ms)",
            flush=True,
        )
    path = write_result("stochastic_depth", vars(a), result, argv, a.results_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
