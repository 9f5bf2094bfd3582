"""``python -m platform.slurm sweep FILE [key=value ...]`` | ``count FILE``: the job-array door
under its older name, kept as an alias of ``python -m platform.sweep --task FILE ...`` /
``--count FILE`` (the same function, :func:`platform.papers.sweep.array_job`: same arguments, output and exit codes).
"""

from __future__ import annotations

import sys

from platform.papers.sweep import array_job
from platform.run import cli

USAGE = (
    "usage: python -m platform.slurm sweep FILE [key=value ...]   "
    "(runs the SLURM_ARRAY_TASK_ID-th config)\n"
    "       python -m platform.slurm count FILE                   (number of configurations)"
)


@cli.entry()
def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("sweep", "count"):
        print(USAGE, file=sys.stderr)
        return 2
    return array_job("task" if argv[0] == "sweep" else "count", argv[1], argv[2:])


if __name__ == "__main__":
    sys.exit(main())
