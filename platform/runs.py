"""``python -m platform.runs``: the door users type; the command lives in ``platform/after/runs_list.py``."""

if __name__ == "__main__":
    import sys

    if __package__ in (
        None,
        "",
    ):  # run as a file (python platform/runs.py): `platform` is the stdlib's
        print(
            "error: run this as `python -m platform.runs ...` from the repository root, or "
            "`import cnn_platform` first in a script or notebook elsewhere (see README, 'After "
            "training')",
            file=sys.stderr,
        )
        sys.exit(2)
    from platform.after.runs_list import main

    sys.exit(main())
