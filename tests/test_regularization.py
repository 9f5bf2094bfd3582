import warnings

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from platform.run.augmentation import mix_batch, random_erase, smooth_targets, soft_cross_entropy
from platform.run.callbacks import EmaCallback
from platform.run.ema import ModelEma, adjusted_ema_decay, ema_decay


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def indexed_batch(n: int = 8, size: int = 16, channels_last: bool = True) -> torch.Tensor:
    """Image j is the constant j, so every output pixel says which input it came from."""
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, size, size).clone()
    return x.to(memory_format=torch.channels_last) if channels_last else x


def partner(soft_row: torch.Tensor, i: int) -> int:
    """The sample mixed into sample i (targets are arange(N), so the row names it)."""
    row = soft_row.clone()
    row[i] = 0
    return int(row.argmax()) if row.max() > 0 else i


def assert_rectangle(mask: torch.Tensor) -> tuple[int, int]:
    """``mask`` (H, W) is one filled axis-aligned rectangle; returns its (height, width)."""
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    assert int(mask.sum()) == h * w and mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
    return h, w


# ---------------------------------------------------------------------------- mixup / cutmix
def test_mixup_images_are_the_convex_combination_the_targets_state():
    n = 8
    x, y = torch.randn(n, 3, 5, 5), torch.arange(n)
    mixed_once = False
    for seed in range(5):
        out, soft = mix_batch(x, y, n, mixup_alpha=1.0, generator=gen(seed))
        assert soft.shape == (n, n) and soft.dtype == torch.float32 and (soft >= 0).all()
        torch.testing.assert_close(soft.sum(1), torch.ones(n))
        assert ((soft > 0).sum(1) <= 2).all()  # each sample mixes with one partner
        torch.testing.assert_close(out, torch.einsum("ij,jchw->ichw", soft, x))
        mixed_once |= bool(((soft > 0.05) & (soft < 0.95)).any())
    assert mixed_once


def test_mixing_is_deterministic_given_a_generator():
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 10, (8,))
    for kw in (
        dict(mixup_alpha=0.2),
        dict(cutmix_alpha=1.0),
        dict(mixup_alpha=0.2, cutmix_alpha=1.0),
    ):
        a, b = (
            mix_batch(x, y, 10, generator=gen(3), **kw),
            mix_batch(x, y, 10, generator=gen(3), **kw),
        )
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    outs = [mix_batch(x, y, 10, mixup_alpha=1.0, generator=gen(s))[0] for s in range(3)]
    assert not torch.equal(outs[0], outs[1]) or not torch.equal(outs[1], outs[2])


def test_cutmix_box_area_matches_the_corrected_lam():
    n, size = 8, 16
    x, y = indexed_batch(n, size), torch.arange(n)
    clipped = 0
    for seed in range(20):
        out, soft = mix_batch(x, y, n, cutmix_alpha=1.0, generator=gen(seed))
        assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(soft.sum(1), torch.ones(n))
        boxes = []
        for i in range(n):
            j = partner(soft[i], i)
            assert set(out[i].unique().tolist()) <= {float(i), float(j)}
            pasted = out[i] == j if j != i else torch.zeros_like(out[i], dtype=torch.bool)
            assert (pasted == pasted[0]).all()  # the same pixels in every channel
            area = float(pasted[0].sum()) / size**2
            assert soft[i, i].item() == pytest.approx(1.0 - area if j != i else 1.0, abs=1e-6)
            if j != i:
                assert soft[i, j].item() == pytest.approx(area, abs=1e-6)
                if area > 0:
                    h, w = assert_rectangle(pasted[0])
                    clipped += h % 2 or w % 2  # unclipped boxes have even sides (2 * half)
                    boxes.append(pasted[0])
        assert all(torch.equal(b, boxes[0]) for b in boxes)  # one box per batch
    assert clipped > 0  # the correction was exercised


def test_switch_prob_picks_cutmix_or_mixup():
    x, y = indexed_batch(8, 8), torch.arange(8)

    def is_cutmix(seed: int, p: float) -> bool:
        out, _ = mix_batch(
            x, y, 8, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=p, generator=gen(seed)
        )
        return bool((out == out.round()).all())  # cutmix copies integer pixels; mixup blends them

    assert all(is_cutmix(s, 1.0) for s in range(5))
    assert not any(is_cutmix(s, 0.0) for s in range(5))
    picks = [is_cutmix(s, 0.5) for s in range(30)]
    assert 5 <= sum(picks) <= 25


def test_both_alphas_zero_is_the_identity():
    x, y = torch.randn(4, 3, 5, 5), torch.tensor([0, 1, 2, 1])
    out, targets = mix_batch(x, y, 3)
    assert out is x and targets is y


def test_mixing_and_erasing_leave_the_input_alone_and_keep_its_layout():
    x = torch.randn(6, 3, 8, 8, dtype=torch.float16).to(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (6,))
    before = x.clone()
    for kw in (dict(mixup_alpha=0.2), dict(cutmix_alpha=1.0)):
        out, soft = mix_batch(x, y, 5, generator=gen(0), **kw)
        assert out.dtype == torch.float16 and out.is_contiguous(memory_format=torch.channels_last)
        assert soft.dtype == torch.float32
    for value in (0.0, "random"):
        out = random_erase(x, p=1.0, value=value, generator=gen(0))
        assert out.dtype == torch.float16 and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, before)


def test_label_smoothing_composes_with_mixing():
    k, eps = 5, 0.1
    logits, y = torch.randn(6, k), torch.tensor([0, 1, 2, 3, 4, 0])
    loss = soft_cross_entropy(logits, smooth_targets(y, k, eps))
    torch.testing.assert_close(loss, F.cross_entropy(logits, y, label_smoothing=eps))
    torch.testing.assert_close(
        soft_cross_entropy(logits, F.one_hot(y, k).float()), F.cross_entropy(logits, y)
    )
    x = torch.randn(6, 3, 4, 4)
    _, mixed = mix_batch(x, y, k, mixup_alpha=0.2, generator=gen(1))
    _, mixed_of_smoothed = mix_batch(
        x, smooth_targets(y, k, eps), k, mixup_alpha=0.2, generator=gen(1)
    )
    torch.testing.assert_close(
        mixed_of_smoothed, smooth_targets(mixed, k, eps)
    )  # smooth∘mix == mix∘smooth
    torch.testing.assert_close(
        soft_cross_entropy(logits, smooth_targets(mixed, k, eps)),
        F.cross_entropy(logits, mixed, label_smoothing=eps),
    )


# ---------------------------------------------------------------------------- random erasing
def test_random_erase_fills_one_rectangle_per_erased_image():
    n, size = 16, 32
    x = torch.rand(n, 3, size, size) + 1.0  # never 0, so the erased pixels are exactly the zeros
    out = random_erase(x, p=1.0, value=0.0, generator=gen(0))
    shapes = set()
    for i in range(n):
        erased = out[i] == 0
        assert (erased == erased[0]).all()  # every channel
        assert torch.equal(out[i][~erased], x[i][~erased])  # nothing else touched
        h, w = assert_rectangle(erased[0])
        assert 0.01 <= h * w / size**2 <= 0.4 and h < size and w < size
        shapes.add((h, w, int(erased[0].any(1).nonzero()[0]), int(erased[0].any(0).nonzero()[0])))
    assert len(shapes) > n // 2  # per-sample boxes


def test_random_erase_random_value_is_per_pixel_noise():
    x = torch.full((8, 3, 32, 32), 100.0)
    out = random_erase(x, p=1.0, value="random", generator=gen(0))
    noise = []
    for i in range(8):
        erased = out[i] != 100.0
        assert (erased == erased[0]).all()
        assert_rectangle(erased[0])
        noise.append(out[i][erased])
    noise = torch.cat(noise)
    assert abs(noise.mean()) < 0.2 and 0.8 < noise.std() < 1.2


def test_random_erase_probability():
    x = torch.rand(200, 1, 16, 16) + 1.0
    assert random_erase(x, p=0.0) is x
    erased = (random_erase(x, p=0.5, generator=gen(0)) == 0).flatten(1).any(1)
    assert 60 <= int(erased.sum()) <= 140
    a, b = random_erase(x, p=0.5, generator=gen(7)), random_erase(x, p=0.5, generator=gen(7))
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------- EMA
def test_ema_decay_schedule():
    assert ema_decay(0, 0.9999) == pytest.approx(0.1)
    assert ema_decay(8, 0.9999) == pytest.approx(0.5)
    assert ema_decay(80, 0.9999) == pytest.approx(0.9)
    assert ema_decay(10**7, 0.9999) == 0.9999
    assert ema_decay(0, 0.9999, warmup=False) == 0.9999
    assert all(ema_decay(s, 0.999) <= ema_decay(s + 1, 0.999) for s in range(3000))
    with pytest.raises(ValueError):
        ema_decay(0, 1.5)


def test_adjusted_ema_decay_is_torchvisions():
    # torchvision recipe: --model-ema-decay 0.99998, 8 GPUs x 128, --model-ema-steps 32, 600 epochs
    assert adjusted_ema_decay(0.99998, 1024, 32, 600) == pytest.approx(1 - 2e-5 * 1024 * 32 / 600)
    assert adjusted_ema_decay(0.9, 1024, 32, 1) == 0.0  # alpha clamps at 1: a plain copy


def test_model_ema_update_math():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema = ModelEma(model, decay=0.9, warmup=False)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        model.weight.fill_(5.0)
    assert ema.update(model, step=0) == 0.9
    assert ema.module.weight.item() == pytest.approx(0.9 * 2.0 + 0.1 * 5.0)
    assert model.weight.item() == 5.0 and model.weight.requires_grad
    warm = ModelEma(nn.Linear(1, 1, bias=False), decay=0.9)
    with torch.no_grad():
        warm.module.weight.fill_(2.0)
    assert warm.update(model, step=0) == pytest.approx(0.1)  # warm-up: mostly the new weights
    assert warm.module.weight.item() == pytest.approx(0.1 * 2.0 + 0.9 * 5.0)


def test_model_ema_copies_buffers_unless_asked_to_average_them():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    copy_ema, avg_ema = (
        ModelEma(model, 0.5, warmup=False),
        ModelEma(model, 0.5, warmup=False, average_buffers=True),
    )
    old_mean = model[1].running_mean.clone()
    model(torch.randn(4, 1, 3, 3) + 3.0)  # train mode: moves the running stats
    for ema in (copy_ema, avg_ema):
        ema.update(model, step=0)
    bn_copy, bn_avg = copy_ema.module[1], avg_ema.module[1]
    assert torch.equal(bn_copy.running_mean, model[1].running_mean)
    torch.testing.assert_close(bn_avg.running_mean, 0.5 * old_mean + 0.5 * model[1].running_mean)
    assert int(bn_copy.num_batches_tracked) == int(bn_avg.num_batches_tracked) == 1
    restored = ModelEma(nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)))
    restored.load_state_dict(avg_ema.state_dict())
    for a, b in zip(restored.state_dict().values(), avg_ema.state_dict().values(), strict=False):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------- Lightning callback
class TinyModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 3, 3, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


class Snapshots(L.Callback):
    """The model's state after every optimizer step, to recompute the EMA by hand."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({k: v.clone() for k, v in pl_module.model.state_dict().items()})


def loaders() -> tuple[DataLoader, DataLoader]:
    g = gen(0)
    train = TensorDataset(
        torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)
    )
    val = TensorDataset(
        torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    )
    return DataLoader(train, batch_size=4), DataLoader(val, batch_size=4)  # 4 steps per epoch


def fit(epochs: int, callbacks: list[L.Callback], ckpt_path=None) -> tuple[L.Trainer, TinyModule]:
    torch.manual_seed(0)
    module = TinyModule()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
        callbacks=callbacks,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers).*")
        trainer.fit(module, *loaders(), ckpt_path=ckpt_path)
    return trainer, module


@pytest.fixture(scope="module")
def two_epochs():
    """2 epochs of 4 steps with an EMA (decay 0.9) and snapshots: (trainer, module, ema callback, snapshots)."""
    ema_cb, snaps = EmaCallback(decay=0.9), Snapshots()
    trainer, module = fit(2, [snaps, ema_cb])
    return trainer, module, ema_cb, snaps


def test_ema_callback_averages_every_step_and_logs_val_ema(two_epochs):
    trainer, module, ema_cb, snaps = two_epochs
    assert len(snaps.states) == 8
    metrics = trainer.callback_metrics
    assert (
        0.0 <= float(metrics["val_ema/top1"]) <= 100.0
        and 0.0 <= float(metrics["val_ema/top5"]) <= 100.0
    )
    assert torch.isfinite(metrics["val_ema/loss"])
    # the same average by hand: parameters averaged with the warm-up decay, buffers copied
    torch.manual_seed(0)
    init = TinyModule().model.state_dict()
    params = {name for name, _ in module.model.named_parameters()}
    expected = {
        k: (ema_decay(0, 0.9) * init[k] + (1 - ema_decay(0, 0.9)) * v) if k in params else v
        for k, v in snaps.states[0].items()
    }
    for step, state in enumerate(snaps.states[1:], start=1):
        d = ema_decay(step, 0.9)
        expected = {
            k: d * expected[k] + (1 - d) * v if k in params else v for k, v in state.items()
        }
    for k, v in ema_cb.ema.state_dict().items():
        torch.testing.assert_close(v, expected[k], msg=k)
    # the logged EMA accuracy is the EMA model's on the validation set
    _, val = loaders()
    x, y = val.dataset.tensors
    with torch.no_grad():
        logits = ema_cb.ema.module(x)
    assert float(metrics["val_ema/top1"]) == pytest.approx(
        100.0 * float((logits.argmax(1) == y).float().mean())
    )
    assert float(metrics["val_ema/loss"]) == pytest.approx(
        float(F.cross_entropy(logits, y)), rel=1e-5
    )


def test_ema_callback_every_n_steps():
    ema_cb, snaps = EmaCallback(decay=0.5, every_n_steps=3, warmup=False), Snapshots()
    fit(1, [snaps, ema_cb])  # updates after optimizer steps 3 only (4 steps)
    bn = "1.running_mean"
    assert torch.equal(ema_cb.ema.state_dict()[bn], snaps.states[2][bn])


def test_ema_state_round_trips_through_a_checkpoint(two_epochs, tmp_path):
    straight = two_epochs[2]
    first = EmaCallback(decay=0.9)
    trainer, _ = fit(1, [first])
    path = tmp_path / "one_epoch.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["callbacks"][first.state_key]["ema"]
    for k, v in first.ema.state_dict().items():
        assert torch.equal(saved[k], v)
    resumed = EmaCallback(decay=0.9)
    fit(2, [resumed], ckpt_path=path)  # one more epoch, continuing the same average as `straight`
    for k, v in straight.ema.state_dict().items():
        torch.testing.assert_close(resumed.ema.state_dict()[k], v, msg=k)
