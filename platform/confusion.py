"""Per-class results: the confusion matrix of a validation pass, as CSV, PNG and a W&B image.

Shared by training (``platform.callbacks.ConfusionReport``, the last validation epoch of a run) and by
``platform.evaluate`` (one matrix per test protocol).  Rows are true classes, columns
predicted classes (torchmetrics' ``MulticlassConfusionMatrix`` convention); a class's top-1
accuracy is its diagonal entry over its row sum.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import torch

from datamodules.write import atomic_path


def class_names(datamodule, num_classes: int) -> list[str]:
    """The dataset's class names (``meta.json``), else ``0 .. num_classes-1``."""
    names = list(
        getattr(datamodule, "class_names", None) or getattr(datamodule, "classes", None) or []
    )
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def per_class_accuracy(matrix: torch.Tensor) -> list[float | None]:
    """Top-1 accuracy (%) of each true class; None for a class with no example."""
    counts = matrix.sum(1)
    return [
        None if n == 0 else round(100.0 * float(matrix[i, i]) / float(n), 4)
        for i, n in enumerate(counts)
    ]


def write_confusion(
    directory: Path, matrix: torch.Tensor, names: Sequence[str], stem: str = "confusion"
) -> tuple[Path, Path]:
    """``<stem>.csv`` (counts, with per-class accuracy) and ``<stem>.png`` in ``directory``."""
    matrix = matrix.detach().cpu().long()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["true \\ predicted", *names, "n", "top1_%"])
    for name, row, acc in zip(names, matrix.tolist(), per_class_accuracy(matrix), strict=False):
        w.writerow([name, *row, sum(row), "" if acc is None else acc])
    csv_path, png_path = directory / f"{stem}.csv", directory / f"{stem}.png"
    with atomic_path(csv_path) as tmp:
        tmp.write_text(buf.getvalue())
    _plot(matrix, names, png_path)
    return csv_path, png_path


def _plot(matrix: torch.Tensor, names: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    rows = matrix.sum(1, keepdim=True).clamp(min=1)
    side = min(12.0, 2.0 + 0.35 * k)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(
        (matrix / rows).numpy(), cmap="Blues", vmin=0, vmax=1
    )  # row-normalised: recall per class
    if k <= 40:
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion ({int(matrix.sum())} examples)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
