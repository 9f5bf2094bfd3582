"""The outputs of ``python -m platform.reproduce landscape`` (platform/papers/landscape.py): surface.json,
surface.csv, per net a contour and a 3-D surface plot (2-D grids) or a curve (1-D), and
``pair.png``, all nets side by side on one colour scale.  Every file is written atomically."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.beton import atomic_path, write_json_atomic


def write_csv(path: Path, record: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["net", "model", "i", "j", "x", "y", "loss", "acc"])
        xs, ys = record["x"], record["y"]
        for label, net in record["nets"].items():
            for j, y in enumerate(ys):
                for i, x in enumerate(xs):
                    loss, acc = net["loss"][j][i], net["acc"][j][i]
                    w.writerow([label, net["model"], i, j, x, y, f"{loss:.8g}", f"{acc:.4f}"])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _levels(record: dict[str, Any], zmax: float | None) -> tuple[float, float, np.ndarray]:
    """One colour scale for every net: the lowest loss of all to ``zmax`` (default: the highest)."""
    values = np.concatenate([np.asarray(n["loss"]).ravel() for n in record["nets"].values()])
    values = values[np.isfinite(values)]
    lo = float(values.min()) if len(values) else 0.0
    hi = float(values.max()) if len(values) else 1.0
    hi = min(hi, zmax) if zmax else hi
    hi = hi if hi > lo else lo + 1e-6
    return lo, hi, np.linspace(lo, hi, 31)


def _save(fig, path: Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def _contour(ax, net: dict[str, Any], xs, ys, levels, title: str):
    z = np.clip(np.asarray(net["loss"], dtype=float), levels[0], levels[-1])
    cs = ax.contourf(xs, ys, z, levels=levels, cmap="viridis")
    ax.contour(xs, ys, z, levels=levels[::3], colors="white", linewidths=0.4)
    ax.plot([0], [0], "r+", ms=8)
    ax.set(title=title, xlabel="x (direction d_x)", ylabel="y (direction d_y)", aspect="equal")
    return cs


def _surface(ax, net: dict[str, Any], xs, ys, lo: float, hi: float, title: str) -> None:
    gx, gy = np.meshgrid(xs, ys)
    z = np.clip(np.asarray(net["loss"], dtype=float), lo, hi)
    ax.plot_surface(gx, gy, z, cmap="viridis", vmin=lo, vmax=hi, linewidth=0, antialiased=True)
    ax.set(title=title, xlabel="x", ylabel="y", zlabel="loss", zlim=(lo, hi))


def _title(label: str, net: dict[str, Any]) -> str:
    x, y = net["center_x"], net["center_y"]
    at = "w*" if x == 0 and y == 0 else f"({x:.2g}, {y:.2g}), the point nearest w*"
    return f"{label}\nloss {net['center_loss']:.3f}, acc {net['center_acc']:.1f}% at {at}"


def plots_2d(out: Path, record: dict[str, Any], zmax: float | None, dpi: int) -> list[str]:
    plt = _pyplot()
    xs, ys = record["x"], record["y"]
    lo, hi, levels = _levels(record, zmax)
    written = []
    for label, net in record["nets"].items():
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        fig.colorbar(_contour(ax, net, xs, ys, levels, _title(label, net)), ax=ax, label="loss")
        fig.tight_layout()
        _save(fig, out / f"contour_{label}.png", dpi)
        plt.close(fig)
        fig = plt.figure(figsize=(5, 4.2))
        _surface(fig.add_subplot(projection="3d"), net, xs, ys, lo, hi, _title(label, net))
        fig.tight_layout()
        _save(fig, out / f"surface3d_{label}.png", dpi)
        plt.close(fig)
        written += [f"contour_{label}.png", f"surface3d_{label}.png"]
    if len(record["nets"]) > 1:
        written.append(_pair_2d(out, record, lo, hi, levels, dpi))
    return written


def _pair_2d(out: Path, record: dict[str, Any], lo: float, hi: float, levels, dpi: int) -> str:
    plt = _pyplot()
    nets = record["nets"]
    fig = plt.figure(figsize=(4.3 * len(nets) + 0.8, 8))
    cs = None
    for c, (label, net) in enumerate(nets.items()):
        ax = fig.add_subplot(2, len(nets), c + 1)
        cs = _contour(ax, net, record["x"], record["y"], levels, _title(label, net))
        ax3 = fig.add_subplot(2, len(nets), len(nets) + c + 1, projection="3d")
        _surface(ax3, net, record["x"], record["y"], lo, hi, "")
    bar = fig.add_axes((0.89, 0.3, 0.02, 0.45))
    fig.colorbar(cs, cax=bar, label=f"training loss, one scale {lo:.2f} to {hi:.2f}")
    fig.suptitle(f"loss landscape ({record['scale']} scale), {record['bn']}", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.86, top=0.88, bottom=0.05, wspace=0.3, hspace=0.25)
    _save(fig, out / "pair.png", dpi)
    plt.close(fig)
    return "pair.png"


def plots_1d(out: Path, record: dict[str, Any], zmax: float | None, dpi: int) -> list[str]:
    plt = _pyplot()
    xs = record["x"]
    lo, hi, _ = _levels(record, zmax)
    written = []
    many = len(record["nets"]) > 1
    both = plt.subplots(figsize=(6, 4)) if many else None
    for label, net in record["nets"].items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for axis in [ax] + ([both[1]] if many else []):
            axis.plot(xs, net["loss"][0], "o-", ms=3, label=f"{label} loss")
        acc = ax.twinx()
        acc.plot(xs, net["acc"][0], "s--", ms=3, color="tab:orange", label="accuracy")
        acc.set_ylabel("top-1 accuracy (%)")
        ax.set(title=_title(label, net), xlabel="x (direction d_x)", ylabel="loss", ylim=(lo, hi))
        fig.tight_layout()
        _save(fig, out / f"curve_{label}.png", dpi)
        plt.close(fig)
        written.append(f"curve_{label}.png")
    if many:
        fig, ax = both
        ax.set(xlabel="x (direction d_x)", ylabel="training loss (one scale)", ylim=(lo, hi))
        ax.set_title(f"loss landscape ({record['scale']} scale), {record['bn']}", fontsize=8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        _save(fig, out / "pair.png", dpi)
        plt.close(fig)
        written.append("pair.png")
    return written


def write_outputs(out: Path, record: dict[str, Any], zmax: float | None, dpi: int) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "surface.json", record)
    write_csv(out / "surface.csv", record)
    plots = plots_2d if len(record["y"]) > 1 or record["two_d"] else plots_1d
    return ["surface.json", "surface.csv", *plots(out, record, zmax, dpi)]
