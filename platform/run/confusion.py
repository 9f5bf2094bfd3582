"""Per-class results: the confusion matrix of a validation pass, as CSV, PNG and a W&B image.

Shared by training (``platform.run.callbacks.ConfusionReport``, the last validation epoch of a run) and by
``platform.after.evaluate`` (one matrix per test protocol).  Rows are true classes, columns
predicted classes (torchmetrics' ``MulticlassConfusionMatrix`` convention); a class's top-1
accuracy is its diagonal entry over its row sum.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import torch

from datamodules.beton import atomic_path

NAME_LIMIT = 64  # characters of a class name kept in the CSV and on the plot
DENSE_LIMIT = 100  # above this many classes the CSV is sparse (one row per non-zero cell)
PLOT_LIMIT = 40  # above this many classes the plot shows the most-confused ones only


def clean_name(name: object, limit: int = NAME_LIMIT) -> str:
    """A class name fit for a CSV cell, a plot label and a terminal: control characters written
    as ``repr`` writes them, cut to ``limit`` characters (``...`` marks a cut)."""
    text = str(name)[: 4 * limit]  # a 10 MB name is never processed whole
    if any(not c.isprintable() for c in text):
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def class_names(datamodule, num_classes: int) -> list[str]:
    """The dataset's class names (``meta.json``), cleaned (:func:`clean_name`), else
    ``0 .. num_classes-1``."""
    names = list(
        getattr(datamodule, "class_names", None) or getattr(datamodule, "classes", None) or []
    )
    if len(names) != num_classes:
        return [str(i) for i in range(num_classes)]
    return [clean_name(n) for n in names]


def per_class_accuracy(matrix: torch.Tensor) -> list[float | None]:
    """Top-1 accuracy (%) of each true class; None for a class with no example."""
    counts = matrix.sum(1)
    return [
        None if n == 0 else round(100.0 * float(matrix[i, i]) / float(n), 4)
        for i, n in enumerate(counts)
    ]


def _csv_text(matrix: torch.Tensor, names: Sequence[str]) -> str:
    """Up to :data:`DENSE_LIMIT` classes the whole matrix (with per-class accuracy); above, one
    row per non-zero cell, largest counts first (at most one row per example)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    if len(names) <= DENSE_LIMIT:
        w.writerow(["true \\ predicted", *names, "n", "top1_%"])
        rows = zip(names, matrix.tolist(), per_class_accuracy(matrix), strict=False)
        for name, row, acc in rows:
            w.writerow([name, *row, sum(row), "" if acc is None else acc])
        return buf.getvalue()
    counts = matrix.sum(1)
    cells = matrix.nonzero()
    values = matrix[cells[:, 0], cells[:, 1]]
    order = values.argsort(descending=True, stable=True)
    w.writerow(["true", "predicted", "count", "true_n"])
    for (i, j), v in zip(cells[order].tolist(), values[order].tolist(), strict=False):
        w.writerow([names[i], names[j], v, int(counts[i])])
    return buf.getvalue()


def write_confusion(
    directory: Path, matrix: torch.Tensor, names: Sequence[str], stem: str = "confusion"
) -> tuple[Path, Path]:
    """``<stem>.csv`` (counts, with per-class accuracy; sparse above :data:`DENSE_LIMIT`
    classes) and ``<stem>.png`` in ``directory``; both bounded whatever the number of classes."""
    matrix = matrix.detach().cpu().long()
    names = [clean_name(n) for n in names]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = directory / f"{stem}.csv", directory / f"{stem}.png"
    with atomic_path(csv_path) as tmp:
        tmp.write_text(_csv_text(matrix, names))
    _plot(matrix, names, png_path)
    return csv_path, png_path


def most_confused(matrix: torch.Tensor, limit: int = PLOT_LIMIT) -> torch.Tensor:
    """Indices (sorted) of the ``limit`` classes with the most errors, as true or as predicted."""
    if matrix.shape[0] <= limit:
        return torch.arange(matrix.shape[0])
    errors = matrix.sum(0) + matrix.sum(1) - 2 * matrix.diagonal()
    return errors.topk(limit).indices.sort().values


def _plot(matrix: torch.Tensor, names: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total, every = int(matrix.sum()), len(names)
    keep = most_confused(matrix)
    matrix = matrix[keep][:, keep]
    names = [names[i][:24] for i in keep.tolist()]
    k = len(names)
    rows = matrix.sum(1, keepdim=True).clamp(min=1)
    side = min(12.0, 2.0 + 0.35 * k)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(
        (matrix / rows).numpy(), cmap="Blues", vmin=0, vmax=1
    )  # row-normalised: recall per class
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    part = f", the {k} most-confused of {every} classes" if k < every else ""
    ax.set_title(f"confusion ({total} examples{part})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
