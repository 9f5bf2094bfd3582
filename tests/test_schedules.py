import math

import pytest

from platform.run.schedules import (
    cosine_factor,
    lr_at,
    resolution_at,
    scaled_lr,
    step_factor,
    warmup_factor,
)


def test_warmup_is_linear_per_iteration_and_ends_at_peak():
    assert warmup_factor(0.0, 5, 0.1) == pytest.approx(0.1)
    assert warmup_factor(2.5, 5, 0.1) == pytest.approx(0.55)
    assert warmup_factor(5.0, 5, 0.1) == 1.0
    assert warmup_factor(3.0, 0, 0.1) == 1.0


def test_step_schedule_divides_by_ten_at_milestones():
    kw = dict(
        steps_per_epoch=100,
        total_epochs=90,
        base_lr=0.1,
        name="step",
        milestones=[30, 60],
        gamma=0.1,
    )
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(2999, **kw) == pytest.approx(0.1)
    assert lr_at(3000, **kw) == pytest.approx(0.01)  # the first step of epoch 30
    assert lr_at(6000, **kw) == pytest.approx(0.001)
    assert step_factor(59.99, [30, 60], 0.1) == pytest.approx(0.1)


def test_cosine_peaks_after_warmup_and_reaches_the_floor():
    kw = dict(
        steps_per_epoch=10,
        total_epochs=20,
        base_lr=0.4,
        name="cosine",
        warmup_epochs=2,
        warmup_start_factor=0.0,
        min_lr_factor=0.01,
    )
    assert lr_at(0, **kw) == 0.0
    assert lr_at(10, **kw) == pytest.approx(0.2)  # half-way through warm-up
    assert lr_at(20, **kw) == pytest.approx(0.4)  # peak exactly at the end of warm-up
    assert lr_at(110, **kw) == pytest.approx(0.4 * (0.01 + 0.99 * 0.5))  # cosine mid-point
    assert lr_at(200, **kw) == pytest.approx(0.004)
    assert cosine_factor(30, 0, 20, 0.0) == 0.0  # clamped after the end
    lrs = [lr_at(s, **kw) for s in range(20, 200)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))  # monotone decay


def test_constant_and_errors():
    assert lr_at(123, 10, 5, 0.3, name="constant") == 0.3
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(0, 10, 5, 0.1, name="triangle")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        lr_at(0, 0, 5, 0.1)
    assert not math.isnan(lr_at(0, 1, 0, 0.1, name="cosine"))


def test_exponential_is_efficientnets_097_every_24_epochs():
    kw = dict(
        steps_per_epoch=10,
        total_epochs=350,
        base_lr=0.256,
        name="exponential",
        gamma=0.97,
        decay_every=2.4,
    )
    assert lr_at(23, **kw) == pytest.approx(0.256)  # epoch 2.3
    assert lr_at(24, **kw) == pytest.approx(0.256 * 0.97)  # epoch 2.4
    assert lr_at(480, **kw) == pytest.approx(0.256 * 0.97**20)


def test_linear_decay_after_warmup_is_ffcvs_triangle():
    kw = dict(
        steps_per_epoch=1,
        total_epochs=88,
        base_lr=1.7,
        name="linear",
        warmup_epochs=2,
        warmup_start_factor=0.0,
    )
    assert lr_at(0, **kw) == 0.0
    assert lr_at(2, **kw) == pytest.approx(1.7)
    assert lr_at(45, **kw) == pytest.approx(1.7 * 0.5)
    assert lr_at(88, **kw) == pytest.approx(0.0)


def test_linear_scaling_rule():
    assert scaled_lr(0.1, 1024, 256) == pytest.approx(0.4)
    assert scaled_lr(0.1, 32, None) == 0.1


def test_progressive_resizing_ramps_in_multiples_of_32():
    # ffcv-imagenet rn50 configs: 160 until epoch 13 (start_ramp = end_ramp - 11), 192 from epoch 13... here 0..10
    res = [resolution_at(e, 160, 192, start_epoch=2, end_epoch=10) for e in range(12)]
    assert res[0] == res[2] == 160 and res[10] == res[11] == 192
    assert all(r % 32 == 0 for r in res) and res == sorted(res)
    assert resolution_at(5, 160, 192, 4, 4) == 192


def test_warmup_in_iterations_overrides_epochs():
    from platform.run.schedules import lr_from_config
    from platform.run.schema import ScheduleConfig

    sched = ScheduleConfig(
        name="constant", warmup_epochs=5, warmup_steps=10, warmup_start_factor=0.0
    )
    assert lr_from_config(5, 100, 90, 0.1, sched) == pytest.approx(0.05)  # half of 10 iterations
    assert lr_from_config(10, 100, 90, 0.1, sched) == pytest.approx(0.1)
