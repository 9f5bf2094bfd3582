"""``python -m platform.evaluate``: the door users type; the command lives in ``platform/after/evaluate.py``."""

if __name__ == "__main__":
    import sys

    if __package__ in (
        None,
        "",
    ):  # run as a file (python platform/evaluate.py): `platform` is the stdlib's
        print(
            "error: run this as `python -m platform.evaluate ...` from the repository root, or "
            "`import cnn_platform` first in a script or notebook elsewhere (see README, 'After "
            "training')",
            file=sys.stderr,
        )
        sys.exit(2)
    from platform.after.evaluate import main

    sys.exit(main())
