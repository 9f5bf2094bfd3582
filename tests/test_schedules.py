import math

import pytest

from platform.schedules import cosine_factor, lr_at, step_factor, warmup_factor


def test_warmup_is_linear_per_iteration_and_ends_at_peak():
    assert warmup_factor(0.0, 5, 0.1) == pytest.approx(0.1)
    assert warmup_factor(2.5, 5, 0.1) == pytest.approx(0.55)
    assert warmup_factor(5.0, 5, 0.1) == 1.0
    assert warmup_factor(3.0, 0, 0.1) == 1.0


def test_step_schedule_divides_by_ten_at_milestones():
    kw = dict(steps_per_epoch=100, total_epochs=90, base_lr=0.1, name="step", milestones=[30, 60], gamma=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(2999, **kw) == pytest.approx(0.1)
    assert lr_at(3000, **kw) == pytest.approx(0.01)   # the first step of epoch 30
    assert lr_at(6000, **kw) == pytest.approx(0.001)
    assert step_factor(59.99, [30, 60], 0.1) == pytest.approx(0.1)


def test_cosine_peaks_after_warmup_and_reaches_the_floor():
    kw = dict(steps_per_epoch=10, total_epochs=20, base_lr=0.4, name="cosine", warmup_epochs=2,
              warmup_start_factor=0.0, min_lr_factor=0.01)
    assert lr_at(0, **kw) == 0.0
    assert lr_at(10, **kw) == pytest.approx(0.2)       # half-way through warm-up
    assert lr_at(20, **kw) == pytest.approx(0.4)       # peak exactly at the end of warm-up
    assert lr_at(110, **kw) == pytest.approx(0.4 * (0.01 + 0.99 * 0.5))  # cosine mid-point
    assert lr_at(200, **kw) == pytest.approx(0.004)
    assert cosine_factor(30, 0, 20, 0.0) == 0.0        # clamped after the end
    lrs = [lr_at(s, **kw) for s in range(20, 200)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))   # monotone decay


def test_constant_and_errors():
    assert lr_at(123, 10, 5, 0.3, name="constant") == 0.3
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(0, 10, 5, 0.1, name="linear")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        lr_at(0, 0, 5, 0.1)
    assert not math.isnan(lr_at(0, 1, 0, 0.1, name="cosine"))
