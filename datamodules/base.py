"""What every datamodule shares (rank/world, the per-device batch, the samplers, the exact
validation shard, the normalisation on the device)."""
from __future__ import annotations

from .beton import DataError


def check_shardable(what: str, size: int, world_size: int, classes: int | None = None) -> None:
    """Refuse a validation set with fewer examples than ranks (a rank with none fails inside Lightning,
    the others in gloo) and a dataset of fewer than 2 classes (a classifier needs two)."""
    if size < world_size:
        raise DataError(f"{what}: {size} validation example(s) for {world_size} ranks; each rank needs "
                        "at least one -- use fewer devices or a larger validation set")
    if classes is not None and classes < 2:
        raise DataError(f"{what}: {classes} class(es); a classifier needs at least 2")
