"""``python -m platform.reproduce landscape --checkpoint A [--checkpoint B ...]``: the loss landscape
of Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"
(NeurIPS 2018, arXiv:1712.09913, Fig. 5: ResNet-56 with and without skip connections).

For each checkpoint w*: random directions d_x (and d_y), seeded by --seed and filter-normalised
(§4: every filter of a conv/linear weight scaled to the norm of w*'s filter; BN and bias directions
zero, as the paper's code with --xignore biasbn); the training loss (cross-entropy) and top-1
accuracy of w* + x d_x + y d_y on a grid (--grid for x, --grid-y for y: a 2-D surface; without
--grid-y a 1-D curve), on a fixed stratified subset of the run's training images (--samples,
validation pipeline: no augmentation).  BN runs in eval mode with the checkpoint's running
statistics; --recompute-bn recomputes them at every grid point on the subset.

Distributed: --devices N runs N gloo processes (torch.distributed) on this machine; --part i/n
computes share i of n (a Slurm array task: --part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)
into OUT/parts/, and --merge (or the same command without --part) assembles.  The surface is the
same however it is split.  Outputs in --out: surface.json, surface.csv, contour_<net>.png,
surface3d_<net>.png (curve_<net>.png for 1-D), and pair.png for several nets on one colour scale.

Example (the proxy of Fig. 5):
  python -m platform.reproduce landscape --checkpoint runs/resnet56/checkpoints/last.ckpt \\
      --checkpoint runs/plain56/checkpoints/last.ckpt --grid -1:1:11 --grid-y -1:1:11 --samples 500
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from datamodules.beton import write_json_atomic
from platform.after.rebuild import STUDY_ERRORS, load_run
from platform.papers.landscape_surface import (
    BN_EVAL,
    BN_RECOMPUTED,
    EXPECTATION,
    MAX_POINTS,
    MAX_SUBSET_BYTES,
    PAPER,
    LandscapeError,
    Net,
    compute,
    parse_axis,
    parse_part,
    prepare,
    tasks,
)
from platform.run import cli
from platform.run.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
FORMAT = 1  # of surface.json and the part files
# Li et al. Fig. 5: the CIFAR-10 ResNets of He et al. with and without shortcuts (20, 56, 110 layers)
PAPER_NETS = {
    ("cifar10", f"{kind}{depth}") for kind in ("resnet", "plain") for depth in (20, 56, 110)
}


# ---------------------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform.reproduce landscape",
        description=__doc__.split("\n\n", 1)[0].replace("``", ""),
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_checkpoint(
        p, many=True, help="runs/<name>/checkpoints/last.ckpt (several nets: one plot, one scale)"
    )
    p.add_argument(
        "--grid",
        type=parse_axis,
        default=parse_axis("-1:1:21"),
        help="x: LO:HI:N (default -1:1:21)",
    )
    p.add_argument("--grid-y", type=parse_axis, help="y: LO:HI:N (a 2-D surface; default: 1-D)")
    p.add_argument("--samples", type=int, default=1000, help="training images (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the directions and the subset")
    p.add_argument("--batch-size", type=int, default=250, help="images per forward pass")
    p.add_argument("--recompute-bn", action="store_true", help="BN statistics per grid point")
    p.add_argument("--devices", type=int, default=1, help="gloo processes on this machine")
    p.add_argument("--part", type=parse_part, help="i/n: compute share i of n into OUT/parts/")
    p.add_argument("--merge", action="store_true", help="assemble OUT/parts/ (no computing)")
    p.add_argument("--threads", type=int, help="torch threads per process (default: cores / N)")
    p.add_argument(
        "--max-hours",
        type=float,
        default=6.0,
        help="refuse a grid estimated to take longer per process (default 6)",
    )
    p.add_argument(
        "--zmax",
        type=float,
        default=10.0,
        help="top of the plots' loss scale, higher values drawn at it (default 10, as "
        "plot_2D.py's vmax in Li et al.'s code; 0: the highest loss)",
    )
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--out", help="output directory (default reproduce/landscape/<run name>)")
    for hidden in ("--rank", "--world", "--port", "--result"):  # a --devices worker's own
        p.add_argument(hidden, help=argparse.SUPPRESS)
    return p


def glue_ranges(argv: list[str]) -> list[str]:
    """``--grid -1:1:21`` as ``--grid=-1:1:21``: argparse takes a value starting with '-' for an option."""
    out: list[str] = []
    for a in argv:
        if out and out[-1] in ("--grid", "--grid-y") and a.startswith("-") and ":" in a:
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def check_args(args: argparse.Namespace) -> None:
    if args.samples < 1 or args.batch_size < 1 or args.devices < 1:
        raise LandscapeError("--samples, --batch-size and --devices must be >= 1")
    if args.grid_y is not None and (args.grid.n < 2 or args.grid_y.n < 2):
        raise LandscapeError("a 2-D surface needs >= 2 points on each axis (--grid, --grid-y)")
    if sum(bool(a) for a in (args.part, args.merge, args.devices > 1)) > 1:
        raise LandscapeError("give one of --part i/n, --merge and --devices N")
    points = args.grid.n * (args.grid_y.n if args.grid_y else 1)
    if points > MAX_POINTS:
        raise LandscapeError(
            f"grid of {points} points per net (--grid {args.grid}"
            f"{f' --grid-y {args.grid_y}' if args.grid_y else ''}) is over {MAX_POINTS}: the "
            "paper's finest is 51x51 = 2601; use fewer points per axis"
        )


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the numbers: a part file and the final surface must agree on all of it."""
    return {
        "checkpoints": [str(Path(c).expanduser().resolve()) for c in args.checkpoint],
        "grid": str(args.grid),
        "grid_y": str(args.grid_y) if args.grid_y else None,
        "samples": args.samples,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "recompute_bn": args.recompute_bn,
    }


def labels_of(runs) -> list[str]:
    labels, seen = [], {}
    for run in runs:
        name = run.cfg.model.name
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return labels


def load_nets(args: argparse.Namespace, log=print) -> list[Net]:
    runs = [load_run(c) for c in args.checkpoint]
    nets = []
    for run, label in zip(runs, labels_of(runs), strict=True):
        nets.append(prepare(run, label, args))
        log(f"{label}: {run.checkpoint}, {sum(len(y) for _, y in nets[-1].batches)} images")
    return nets


def default_out(args: argparse.Namespace) -> Path:
    """reproduce/landscape/<run name of the first checkpoint>."""
    path = Path(args.checkpoint[0]).expanduser()
    return Path("reproduce") / "landscape" / RunDir.of_checkpoint(path).path.name


def axes(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    return args.grid.values, (args.grid_y.values if args.grid_y else [0.0])


# ---------------------------------------------------------------------------- cost
def check_cost(nets: list[Net], args: argparse.Namespace, processes: int, log=print) -> float:
    """Measure one point of each net here; refuse a grid estimated over --max-hours per process."""
    size = sum(x.numel() * x.element_size() for net in nets for x, _ in net.batches)
    if size > MAX_SUBSET_BYTES:
        raise LandscapeError(
            f"--samples {args.samples}: the subsets take {size / 2**30:.1f} GiB in memory (limit "
            f"{MAX_SUBSET_BYTES / 2**30:.0f} GiB); use fewer --samples"
        )
    xs, ys = axes(args)
    seconds = 0.0
    for net in nets:
        net.point(0.0, 0.0, args.recompute_bn)  # the first pass pays one-off warm-up costs
        start = time.perf_counter()
        net.point(0.0, 0.0, args.recompute_bn)
        seconds += time.perf_counter() - start
        net.restore()
    points = len(xs) * len(ys)
    estimate = seconds * points / processes
    log(
        f"cost: {seconds:.2f} s per grid point for {len(nets)} net(s) here; {points} points on "
        f"{processes} process(es): about {estimate / 60:.1f} min"
    )
    if estimate > args.max_hours * 3600:
        raise LandscapeError(
            f"{points} grid points x {len(nets)} net(s) on {args.samples} images: about "
            f"{estimate / 3600:.1f} h per process here ({seconds:.2f} s per point measured), over "
            f"--max-hours {args.max_hours:g}; use fewer points (--grid/--grid-y) or --samples, or "
            "split it (--devices N, or a Slurm array with --part i/n), or raise --max-hours"
        )
    return estimate


# ---------------------------------------------------------------------------- the record
def assemble(
    nets_info: list[dict[str, Any]], points: dict[int, list[float]], args: argparse.Namespace
) -> dict[str, Any]:
    xs, ys = axes(args)
    all_tasks = tasks(len(nets_info), xs, ys)
    missing = [k for k in range(len(all_tasks)) if k not in points]
    if missing:
        raise LandscapeError(
            f"{len(missing)} of {len(all_tasks)} points missing (first: {missing[0]})"
        )
    nets = {}
    for n, info in enumerate(nets_info):
        loss = [[0.0] * len(xs) for _ in ys]
        acc = [[0.0] * len(xs) for _ in ys]
        for k, (m, i, j) in enumerate(all_tasks):
            if m == n:
                loss[j][i], acc[j][i] = points[k]
        center = (
            min(range(len(xs)), key=lambda i: abs(xs[i])),
            min(range(len(ys)), key=lambda j: abs(ys[j])),
        )
        nets[info["label"]] = {
            **info,
            "loss": loss,
            "acc": acc,
            "center_x": xs[center[0]],
            "center_y": ys[center[1]],
            "center_loss": loss[center[1]][center[0]],
            "center_acc": acc[center[1]][center[0]],
        }
    first = next(iter(nets.values()))
    return {
        "format": FORMAT,
        "paper": PAPER,
        "expectation": EXPECTATION,
        "scale": first["scale"],
        "bn": BN_RECOMPUTED if args.recompute_bn else BN_EVAL,
        "loss": "cross-entropy (no label smoothing), mean over the subset; acc: top-1 %",
        "directions": "Gaussian, filter-normalised (Li et al. §4), zero on BN and biases",
        "two_d": args.grid_y is not None,
        "settings": settings(args),
        "x": xs,
        "y": ys,
        "nets": nets,
    }


def net_info(net: Net) -> dict[str, Any]:
    cfg = net.run.cfg
    scale = "paper" if (cfg.data.name, cfg.model.name) in PAPER_NETS else "proxy"
    return {
        "label": net.label,
        "checkpoint": str(net.run.checkpoint),
        "run_dir": str(net.run.run_dir),
        "model": cfg.model.name,
        "data": cfg.data.name,
        "scale": scale,
        "images": sum(len(y) for _, y in net.batches),
        "params": sum(p.numel() for p in net.run.model.parameters()),
        "moved_params": sum(int((d != 0).sum()) for d in net.dirs[0].values()),
    }


# ---------------------------------------------------------------------------- Slurm-array parts
def part_path(out: Path, i: int, n: int) -> Path:
    return out / "parts" / f"part-{i}-of-{n}.json"


def read_parts(out: Path, args: argparse.Namespace) -> tuple[list[dict], dict[int, list[float]]]:
    files = sorted((out / "parts").glob("part-*-of-*.json"))
    if not files:
        raise LandscapeError(
            f"--merge: no part files in {out / 'parts'}; run the command with --part i/n first"
        )
    parts = [json.loads(f.read_text()) for f in files]
    want = settings(args)
    bad = [f.name for f, p in zip(files, parts, strict=True) if p.get("settings") != want]
    if bad:
        raise LandscapeError(
            f"{out / 'parts'}/{bad[0]}: computed with other settings than this command "
            "(checkpoints, grid, samples, seed, batch size or --recompute-bn); rerun that part or "
            "give the same arguments"
        )
    n = parts[0]["of"]
    have = {p["part"] for p in parts if p["of"] == n}
    if len({p["of"] for p in parts}) > 1 or have != set(range(n)):
        lacking = sorted(set(range(n)) - have)
        raise LandscapeError(
            f"{out / 'parts'}: parts {lacking} of {n} missing (or parts of another split); run "
            f"--part {lacking[0] if lacking else 0}/{n}"
        )
    points = {int(k): v for p in parts for k, v in p["points"].items()}
    return parts[0]["nets"], points


# ---------------------------------------------------------------------------- --devices N
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv: list[str], args: argparse.Namespace, log=print) -> tuple[list[dict], dict]:
    """Run this command in ``--devices`` gloo processes; rank 0 gathers every point."""
    rest = [a for a in argv if not a.startswith("--devices")]
    if "--devices" in argv:
        k = argv.index("--devices")
        rest = argv[:k] + argv[k + 2 :]
    port, world = _free_port(), args.devices
    with tempfile.TemporaryDirectory(prefix="landscape-") as tmp:
        result = Path(tmp) / "result.json"
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "platform.landscape", *rest]
                + ["--rank", str(r), "--world", str(world), "--port", str(port)]
                + ["--result", str(result)],
                cwd=ROOT,
            )
            for r in range(world)
        ]
        codes = [p.wait() for p in procs]
        if any(codes) or not result.is_file():
            raise LandscapeError(f"a --devices rank failed (exit codes {codes}); see its log above")
        data = json.loads(result.read_text())
    log(f"{world} gloo ranks: {len(data['points'])} points gathered on rank 0")
    return data["nets"], {int(k): v for k, v in data["points"].items()}


def worker(args: argparse.Namespace) -> int:
    """One rank of ``--devices``: its share of the points, gathered on rank 0 over gloo."""
    import torch.distributed as dist

    rank, world = int(args.rank), int(args.world)
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        nets = load_nets(args, log=lambda m: print(f"rank {rank}: {m}", flush=True))
        xs, ys = axes(args)
        mine = compute(nets, xs, ys, args.recompute_bn, rank, world, print)
        gathered = [None] * world if rank == 0 else None
        dist.gather_object(mine, gathered, dst=0)
        if rank == 0:
            points = {k: v for part in gathered for k, v in part.items()}
            write_json_atomic(args.result, {"nets": [net_info(n) for n in nets], "points": points})
    finally:
        dist.destroy_process_group()
    return 0


# ---------------------------------------------------------------------------- main
def run(argv: list[str], args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_out(args)
    parts_exist = any((out / "parts").glob("part-*.json"))
    if args.merge or (not args.part and args.devices == 1 and parts_exist):
        nets_info, points = read_parts(out, args)
        print(f"assembled {len(points)} points from {out / 'parts'}")
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        nets = load_nets(args)
        i, n = args.part or (0, 1)
        check_cost(nets, args, n * args.devices)
        if args.devices > 1:
            nets_info, points = spawn(argv, args)
        else:
            start, cpu = time.perf_counter(), time.process_time()
            points = compute(nets, *axes(args), args.recompute_bn, i, n, print)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(
                f"computed {len(points)} points: {wall:.1f} s wall, {cpu:.1f} s CPU (this process)"
            )
            nets_info = [net_info(net) for net in nets]
            if args.part:
                path = part_path(out, i, n)
                payload = {"format": FORMAT, "part": i, "of": n, "settings": settings(args)}
                write_json_atomic(path, {**payload, "nets": nets_info, "points": points})
                print(f"wrote {path}; assemble with the same command and --merge")
                return 0
    record = assemble(nets_info, points, args)
    from platform.papers.landscape_plot import write_outputs

    written = write_outputs(out, record, args.zmax, args.dpi)
    for label, net in record["nets"].items():
        lo, hi = min(map(min, net["loss"])), max(map(max, net["loss"]))
        at = f"loss {net['center_loss']:.4f}, acc {net['center_acc']:.2f}% at w*"
        print(f"{label}: {at}; loss over the grid {lo:.4f} to {hi:.4f}")
    print(f"{record['bn']}.\nExpected: {EXPECTATION}")
    print(f"wrote {out}/: {', '.join(written)}")
    return 0


@cli.entry()
def main(argv: list[str]) -> int:
    argv = glue_ranges(argv)
    args, _ = cli.parse(parser(), argv, overrides=False)
    try:
        check_args(args)
        if args.rank is not None:
            return worker(args)
        return run(argv, args)
    except (LandscapeError, *STUDY_ERRORS) as e:
        return cli.user_error(e)


if __name__ == "__main__":
    sys.exit(main())
