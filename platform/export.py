"""``python -m platform.export``: the door users type; the command lives in ``platform/after/export.py``."""

if __name__ == "__main__":
    import sys

    if __package__ in (
        None,
        "",
    ):  # run as a file (python platform/export.py): `platform` is the stdlib's
        print(
            "error: run this as `python -m platform.export ...` from the repository root, or "
            "`import cnn_platform` first in a script or notebook elsewhere (see README, 'After "
            "training')",
            file=sys.stderr,
        )
        sys.exit(2)
    from platform.after.export import main

    sys.exit(main())
