"""The post-training confusion extras are bounded by the number of classes and never fail a
finished run (issue 26 item 6)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import torch

from platform.run.callbacks import ConfusionReport
from platform.run.confusion import class_names, write_confusion


def _sparse_matrix(k: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    m = torch.zeros(k, k, dtype=torch.long)
    m[torch.randint(k, (n,), generator=g), torch.randint(k, (n,), generator=g)] += 1
    return m


def test_thousands_of_classes_write_a_sparse_csv_and_a_bounded_plot(tmp_path):
    k = 3000
    matrix = _sparse_matrix(k, 32)  # 32 validation images, as in the issue
    start = time.monotonic()
    csv_path, png = write_confusion(tmp_path, matrix, [f"class {i}" for i in range(k)])
    assert time.monotonic() - start < 60
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "true,predicted,count,true_n" and len(lines) <= 33
    assert csv_path.stat().st_size < 10_000 and png.stat().st_size < 2_000_000


def test_a_huge_or_hostile_class_name_is_cut_and_escaped(tmp_path):
    dm = SimpleNamespace(class_names=["x" * 10_000_000, "\x1b[31mred\nline", "ok"])
    names = class_names(dm, 3)
    assert len(names[0]) <= 64 and names[0].endswith("...")
    assert names[1] == "\\x1b[31mred\\nline" and names[2] == "ok"
    start = time.monotonic()
    csv_path, _ = write_confusion(tmp_path, _sparse_matrix(3, 12), dm.class_names)
    assert time.monotonic() - start < 60 and csv_path.stat().st_size < 2_000


def test_a_failing_confusion_extra_is_a_warning_not_a_failed_run(tmp_path, caplog):
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run directory should be")  # every write fails
    module = SimpleNamespace(last_confusion=_sparse_matrix(3, 5))
    trainer = SimpleNamespace(
        is_global_zero=True, datamodule=SimpleNamespace(class_names=["a", "b", "c"]), loggers=[]
    )
    with caplog.at_level(logging.WARNING, logger="platform.callbacks"):
        ConfusionReport(blocker).on_train_end(trainer, module)  # does not raise
    warned = [
        r.getMessage() for r in caplog.records if "confusion matrix not written" in r.getMessage()
    ]
    assert len(warned) == 1 and "\n" not in warned[0] and str(blocker) in warned[0]
