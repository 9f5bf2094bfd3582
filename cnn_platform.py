"""Use the platform from a script or notebook outside the repository root: ``import cnn_platform``.

Our package is named ``platform`` (the user's commands are ``python -m platform.train ...``), which
is also a standard-library module.  From the repository root ``python -m`` finds ours first; anywhere
else -- a notebook kernel, ``python ~/analysis.py`` -- the standard library's is usually imported
already (IPython, torch and wandb import it) and ``import platform.after.evaluate`` fails with "'platform'
is not a package".  Importing this module first fixes that, in any order::

    import sys; sys.path.append("/path/to/cnn-platform")   # the repository root
    import cnn_platform                                      # our `platform` package, from now on
    from platform.after.evaluate import evaluate

It puts the repository root on ``sys.path`` (for ``models`` and ``datamodules``) and installs our
``platform`` package under that name.  The package re-exports the standard library's ``platform``
API (``platform/__init__.py``), so ``platform.system()`` keeps working for every caller, and modules
that imported the standard library's module before keep their reference to it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "platform"


def install() -> None:
    """Make ``import platform.<module>`` mean the repository's package (idempotent)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    current = sys.modules.get("platform")
    if current is not None and hasattr(
        current, "__path__"
    ):  # a package: ours already, or someone else's
        if Path(list(current.__path__)[0]).resolve() != PACKAGE:
            raise ImportError(
                f"cnn_platform: another package named 'platform' is imported "
                f"({list(current.__path__)[0]}); start a fresh interpreter and import "
                "cnn_platform first"
            )
        return
    spec = importlib.util.spec_from_file_location(
        "platform", PACKAGE / "__init__.py", submodule_search_locations=[str(PACKAGE)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["platform"] = package  # replaces the stdlib module (re-exported by our package)
    try:
        spec.loader.exec_module(package)
    except BaseException:
        if current is not None:
            sys.modules["platform"] = current
        raise


install()
