"""``python -m platform.doctor``: what this machine offers the platform, as JSON.

Also the proof that the ``platform`` shim works: it runs under ``python -m platform.…``,
calls the standard library's ``platform`` API and imports torch, lightning, wandb and FFCV.
"""
from __future__ import annotations

import json
import sys


def report() -> dict:
    import platform

    import ffcv
    import lightning
    import torch
    import wandb

    from platform.runs import environment

    env = environment()
    env.update({
        "system": platform.system(), "machine": platform.machine(), "python": platform.python_version(),
        "wandb": wandb.__version__, "ffcv": getattr(ffcv, "__version__", "installed"),
        "lightning": lightning.__version__, "cuda_available": torch.cuda.is_available(),
        "num_threads": torch.get_num_threads(),
    })
    return env


if __name__ == "__main__":
    json.dump(report(), sys.stdout, indent=2)
    print()
