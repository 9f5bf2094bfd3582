"""Config ranges (issue 13, item 6): every key's allowed values are declared once (``_f(range=...)`` /
``rule=``); these tables and properties are generated from that declaration, so a key added with a range
is tested without a line here."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform.run.config import check_key, help_text, load_config
from platform.run.schema import ConfigError, Interval, all_keys

KEYS = all_keys()
RANGED = {k: f for k, f in KEYS.items() if "range" in f.metadata}
FLOAT_KEYS = [k for k, f in KEYS.items() if "float" in str(f.type)]


def _is_float(key: str) -> bool:
    return "float" in str(KEYS[key].type)


def _arg(key: str, v: float) -> str:
    text = ".nan" if v != v else {math.inf: ".inf", -math.inf: "-.inf"}.get(v, repr(v))
    return f"{key}=[{text}]" if str(KEYS[key].type).startswith("list") else f"{key}={text}"


def _boundary_table() -> list[tuple[str, float, bool]]:
    """(key, value, allowed) at and around each declared bound, plus an interior point."""
    rows = []
    for key, f in RANGED.items():
        r: Interval = f.metadata["range"]
        step = 0.5 if _is_float(key) else 1
        finite_hi = r.hi if math.isfinite(r.hi) else r.lo + 10
        rows += [(key, r.lo, r.lo_closed), (key, r.lo - step, False)]
        if math.isfinite(r.hi):
            rows += [(key, r.hi, r.hi_closed), (key, r.hi + step, False)]
        rows.append((key, (r.lo + finite_hi) / 2 if _is_float(key) else int(r.lo) + 1, True))
    rows = [(k, (float(v) if _is_float(k) else int(v)), ok) for k, v, ok in rows]
    return rows


TABLE = _boundary_table()


@pytest.mark.parametrize("key, value, allowed", TABLE, ids=[f"{k}={v}" for k, v, _ in TABLE])
def test_declared_range_table(key, value, allowed):
    """load_config accepts a value inside the declared interval and refuses one outside, naming the key,
    the value and the interval.  (Cross-key rules are satisfied by the defaults.)"""
    extra = []
    if key in ("data.min_resolution", "data.max_resolution"):  # progressive resizing needs both
        other = "data.max_resolution" if key == "data.min_resolution" else "data.min_resolution"
        extra = [f"{other}=64"]
    if allowed:
        load_config([_arg(key, value), *extra])
    else:
        with pytest.raises(ConfigError) as e:
            load_config([_arg(key, value), *extra])
        msg = str(e.value)
        assert key in msg and str(KEYS[key].metadata["range"]) in msg and "\n" not in msg


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_float_key_refuses_non_finite(key, bad):
    with pytest.raises(ConfigError, match=f"{key}.*finite"):
        load_config([_arg(key, bad)])


def test_overflowing_literal_is_refused():
    with pytest.raises(ConfigError, match="optim.weight_decay.*finite"):
        load_config(["optim.weight_decay=1e999"])


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(sorted(RANGED)), x=st.floats(allow_nan=True, allow_infinity=True, width=64)
)
def test_check_agrees_with_the_interval(key, x):
    """Property: for any number, check_key refuses it exactly when it is non-finite or outside the range."""
    f = RANGED[key]
    r: Interval = f.metadata["range"]
    value = x if _is_float(key) else (int(x) if math.isfinite(x) else None)
    if value is None:
        return
    inside = (
        math.isfinite(value)
        and (r.lo <= value if r.lo_closed else r.lo < value)
        and (value <= r.hi if r.hi_closed else value < r.hi)
    )
    error = check_key(key, [value] if str(f.type).startswith("list") else value, f)
    assert (error is None) == inside, (key, value, error)
    if error:
        assert key in error and (str(r) in error or "finite" in error)


def test_help_shows_each_declared_range():
    text = help_text()
    for key, f in RANGED.items():
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(key + " "))
        assert f"[range {f.metadata['range']}]" in line


# ---------------------------------------------------------------------------- rules
@pytest.mark.parametrize(
    "arg",
    [
        "run.name=..",
        "run.name=.",
        "run.name=/tmp/x",
        "run.name=a/b",
        "run.name=a b",
        "run.name=../../etc",
        "data.name=../x",
        "model.name=a/b",
        "recipe=../../etc/x",
        "recipe=/abs/path",
        "recipe=a/../b",
    ],
)
def test_path_components_are_refused(arg):
    key = arg.split("=")[0]
    with pytest.raises(ConfigError, match=f"{key}.*(path component|relative name)"):
        load_config([arg])


@pytest.mark.parametrize(
    "arg", ["run.name=resnet56-cifar10_seed.1+x", "run.name=2024", "run.name=a.b"]
)
def test_good_run_names_pass(arg):
    assert load_config([arg]).run.name == arg.split("=", 1)[1]


# a list of device ids is Lightning's own form (issue 17); an empty, repeated or negative one is not
@pytest.mark.parametrize(
    "value, ok",
    [
        ("0", False),
        ("[0, 1]", True),
        ("[]", False),
        ("[0, 0]", False),
        ("[-1]", False),
        ("two", False),
        ("-2", False),
        ("1.5", False),
        ("true", False),
        ("auto", True),
        ("1", True),
        ("8", True),
        ("-1", True),
    ],
)
def test_devices_rule(value, ok):
    if ok:
        load_config([f"trainer.devices={value}"])
    else:
        with pytest.raises(ConfigError, match="trainer.devices"):
            load_config([f"trainer.devices={value}"])


def test_cache_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    for bad in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(ConfigError, match="data.cache_dir.*is a file"):
            load_config([f"data.cache_dir={bad}"])
    assert load_config([f"data.cache_dir={tmp_path / 'new'}"]).data.cache_dir == str(
        tmp_path / "new"
    )
