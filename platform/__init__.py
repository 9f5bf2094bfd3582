"""Re-export of the standard library's ``platform`` module -- and nothing else.

``python -m platform.train`` puts the repository root first on ``sys.path``, so this
package shadows the stdlib ``platform`` for the whole process, and torch, wandb and
lightning call ``platform.system()`` and friends.  We therefore load the stdlib file by
path and re-export its public API.  Keep this file to that shim (see docs/DESIGN.md).
"""

import importlib.util as _ilu
import os as _os
import sysconfig as _sysconfig

_spec = _ilu.spec_from_file_location(
    "_stdlib_platform", _os.path.join(_sysconfig.get_paths()["stdlib"], "platform.py")
)
_stdlib = _ilu.module_from_spec(_spec)
_spec.loader.exec_module(_stdlib)
globals().update({k: v for k, v in vars(_stdlib).items() if not k.startswith("__")})
del _ilu, _os, _sysconfig, _spec
