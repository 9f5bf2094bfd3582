"""Lightning internals the platform touches, checked on a real (tiny) Trainer.

``pyproject.toml`` pins ``lightning`` to the minor version these were read from (2.6); when an
upgrade moves one of them, a test here fails naming the attribute and the file of ours that
depends on it, instead of a run that silently loses its checkpoints or its mid-epoch position.

Touched (``grep -rnE "\\._[a-z][a-z_]*" platform datamodules``, read hit by hit):

* ``ModelCheckpoint._save_checkpoint`` / ``_remove_checkpoint`` (overridden) and
  ``_last_global_step_saved`` / ``_last_checkpoint_saved`` (set by the override, as the base
  does) -- ``platform/run/callbacks.py`` ``AtomicModelCheckpoint``;
* ``trainer._checkpoint_connector.dump_checkpoint`` -- ``platform/run/rundir.py`` ``save_checkpoint``
  (``RunCheckpoint``'s ``last.ckpt``, the preemption checkpoint);
* ``trainer.fit_loop.epoch_loop.batch_progress.current.ready`` -- ``datamodules/resume.py``
  ``batches_done`` (the mid-epoch resume);
* ``WandbLogger._wandb_init`` -- ``platform/run/compose.py`` ``build_loggers``;
  ``WandbLogger._experiment`` -- ``platform/run/train.py`` ``_finalize_wandb``;
* Lightning's own SIGTERM handler installed before training -- ``platform/run/slurm.py``
  ``PreemptionCallback.on_train_start`` puts ours back;
* ``trainer.precision_plugin.val_step_context`` -- ``platform/run/callbacks.py`` ``EmaCallback``.
"""

from __future__ import annotations

import inspect
import signal

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _moved(what: str, ours: str) -> str:
    return (
        f"Lightning {L.__version__}: {what} moved or changed; {ours} depends on it (pinned in "
        f"pyproject.toml to the version it was written for: update our code, then the pin)"
    )


class _Tiny(L.LightningModule):
    """4 features -> 2 classes; ``val/top1`` rises every epoch: each best replaces the last."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        self.log("val/top1", float(self.current_epoch), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Probe(L.Callback):
    """What the platform reads from Lightning during a fit, at each training batch start."""

    def __init__(self) -> None:
        self.ready: list[tuple[int, int, int]] = []
        self.sigterm = []
        self.val_context = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        from datamodules.resume import batches_done

        try:
            ready = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        except AttributeError as e:
            pytest.fail(
                _moved(
                    f"trainer.fit_loop.epoch_loop.batch_progress.current.ready ({e})",
                    "datamodules/resume.py batches_done (mid-epoch resume)",
                )
            )
        self.ready.append((batch_idx, ready, batches_done(trainer)))
        self.sigterm.append(signal.getsignal(signal.SIGTERM))
        plugin = getattr(trainer, "precision_plugin", None)
        self.val_context = getattr(plugin, "val_step_context", None)


def _loader(n: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=2)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One 2-epoch fit (3 batches each) with our checkpoint and preemption callbacks."""
    from platform.run import stopping
    from platform.run.callbacks import AtomicModelCheckpoint, RunCheckpoint

    tmp_path = tmp_path_factory.mktemp("fit")
    best = AtomicModelCheckpoint(
        dirpath=tmp_path / "checkpoints",
        filename="best-epoch{epoch:03d}",
        monitor="val/top1",
        mode="max",
        save_top_k=1,
        save_last=False,
        save_on_train_epoch_end=True,
        auto_insert_metric_name=False,
    )
    last = RunCheckpoint(tmp_path)
    probe = _Probe()
    saved = {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS}
    stop = stopping.PreemptionCallback(tmp_path, checkpointer=last)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        limit_val_batches=1,
        callbacks=[probe, best, last, stop],
    )
    try:
        trainer.fit(_Tiny(), train_dataloaders=_loader(6), val_dataloaders=_loader(2))
    finally:
        stopping.restore_handlers(saved)
    return trainer, best, last, probe, tmp_path


def test_model_checkpoint_private_state_is_what_our_override_sets(fitted):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from platform.run.rundir import digest_path

    ours = "platform/run/callbacks.py AtomicModelCheckpoint._save_checkpoint"
    fresh = ModelCheckpoint()
    for name, start in (("_last_checkpoint_saved", ""), ("_last_global_step_saved", 0)):
        assert getattr(fresh, name, None) == start, _moved(
            f"ModelCheckpoint.{name} (initially {start!r})", ours
        )
    base = inspect.getsource(ModelCheckpoint._save_checkpoint)
    for line in (
        "self._last_global_step_saved = trainer.global_step",
        "self._last_checkpoint_saved = filepath",
    ):
        assert line in base, _moved(
            f"ModelCheckpoint._save_checkpoint no longer does `{line}`", ours
        )
    assert "self._save_checkpoint(trainer, filepath)" in inspect.getsource(ModelCheckpoint), _moved(
        "ModelCheckpoint no longer saves through self._save_checkpoint", ours
    )
    assert "self._remove_checkpoint(trainer," in inspect.getsource(ModelCheckpoint), _moved(
        "ModelCheckpoint no longer removes through self._remove_checkpoint",
        "platform/run/callbacks.py AtomicModelCheckpoint._remove_checkpoint",
    )

    trainer, best, _, _, tmp_path = fitted
    files = sorted(p.name for p in (tmp_path / "checkpoints").glob("best-*.ckpt"))
    assert files == ["best-epoch001.ckpt"], (
        f"Lightning did not call our _save_checkpoint/_remove_checkpoint: {files}"
    )
    path = str(tmp_path / "checkpoints" / files[0])
    assert best._last_checkpoint_saved == best.best_model_path == path
    assert best._last_global_step_saved == trainer.global_step == 6
    assert digest_path(tmp_path / "checkpoints" / files[0]).is_file(), (
        "the best checkpoint was not ours (no digest)"
    )
    assert not digest_path(tmp_path / "checkpoints" / "best-epoch000.ckpt").exists(), (
        "the replaced best checkpoint's digest was left behind (our _remove_checkpoint not called)"
    )


def test_dump_checkpoint_holds_what_resume_reads(fitted):
    trainer, _, last, _, _ = fitted
    connector = getattr(trainer, "_checkpoint_connector", None)
    assert callable(getattr(connector, "dump_checkpoint", None)), _moved(
        "trainer._checkpoint_connector.dump_checkpoint", "platform/run/rundir.py save_checkpoint"
    )
    state = torch.load(last.path, map_location="cpu", weights_only=False)  # via dump_checkpoint
    keys = {"state_dict", "optimizer_states", "loops", "epoch", "global_step"}
    assert keys <= set(state), sorted(state)
    progress = state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert progress["ready"] == 3, _moved(
        "the checkpoint's fit_loop epoch_loop.batch_progress", "datamodules/resume.py batches_done"
    )


def test_batch_progress_counts_fetched_batches(fitted):
    _, _, _, probe, _ = fitted
    # two epochs of 3 batches: at a batch start it is fetched (ready = index + 1), reset per epoch
    assert [r for _, r, _ in probe.ready] == [1, 2, 3, 1, 2, 3], probe.ready
    assert all(ours == ready for _, ready, ours in probe.ready), _moved(
        "batch_progress.current.ready as batches_done reads it", "datamodules/resume.py"
    )


def test_our_stop_handler_wins_over_lightnings_and_precision_context_exists(fitted):
    from platform.run import stopping

    _, _, _, probe, _ = fitted
    assert probe.sigterm and all(h is stopping._on_signal for h in probe.sigterm), _moved(
        "the SIGTERM handler during training (Lightning's signal connector)",
        "platform/run/slurm.py PreemptionCallback.on_train_start",
    )
    assert callable(probe.val_context), _moved(
        "trainer.precision_plugin.val_step_context", "platform/run/callbacks.py EmaCallback"
    )


def test_wandb_logger_private_fields(tmp_path):
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(mode="offline", save_dir=str(tmp_path))
    init = getattr(logger, "_wandb_init", None)
    assert isinstance(init, dict) and "mode" in init, _moved(
        "WandbLogger._wandb_init (the wandb.init arguments)",
        "platform/run/compose.py build_loggers",
    )
    assert "_experiment" in vars(logger) and logger._experiment is None, _moved(
        "WandbLogger._experiment (None until the run starts)",
        "platform/run/train.py _finalize_wandb",
    )


def test_wandb_run_is_built_quiet_so_its_footer_stays_off_the_console(tmp_path):
    """Issue 25: W&B's end-of-run footer (history sparklines, summary) is not printed; the run
    history is in metrics.jsonl and the W&B files."""
    from platform.run.compose import build_loggers
    from platform.run.config import load_config

    cfg = load_config(["logging.wandb=offline"])
    (logger,) = build_loggers(cfg, tmp_path / "run")
    assert logger._wandb_init["settings"].quiet is True
