"""Our package ``platform`` must not break the standard library's ``platform`` (DESIGN: the name)."""

import json
import sys

from conftest import run_cli


def test_stdlib_platform_api_works_under_python_m_platform():
    proc = run_cli("platform.doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    import platform as ours  # this process also runs from the root: the shim

    assert report["system"] == ours.system() and report["system"]
    assert report["python"] == ours.python_version() == "%d.%d.%d" % sys.version_info[:3]
    assert report["machine"] == ours.machine() and report["machine"]
    assert report["torch"] and report["wandb"] and report["lightning"]


def test_train_help_runs_and_lists_keys():
    proc = run_cli("platform.train", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "optim.lr" in proc.stdout and "model.name" in proc.stdout


def test_shim_holds_only_the_stdlib_api():
    import platform

    assert platform.__file__.endswith("platform/__init__.py")
    import importlib.util
    import sysconfig

    spec = importlib.util.spec_from_file_location(
        "stdlib_platform", sysconfig.get_paths()["stdlib"] + "/platform.py"
    )
    stdlib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stdlib)
    public = {n for n in dir(stdlib) if not n.startswith("_")}
    assert public <= set(dir(platform))  # every stdlib name is re-exported
    assert platform.uname() == stdlib.uname()
