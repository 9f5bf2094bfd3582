"""``python -m platform.doctor``: the door users type; the command lives in ``platform/run/doctor.py``."""

if __name__ == "__main__":
    import sys

    if __package__ in (
        None,
        "",
    ):  # run as a file (python platform/doctor.py): `platform` is the stdlib's
        print(
            "error: run this as `python -m platform.doctor ...` from the repository root, or "
            "`import cnn_platform` first in a script or notebook elsewhere (see README, 'After "
            "training')",
            file=sys.stderr,
        )
        sys.exit(2)
    from platform.run.doctor import main

    sys.exit(main())
