"""The one convention of the ``python -m platform.*`` entry points.

Every ``main(argv=None) -> int`` is wrapped by :func:`entry`: ``argv`` defaults to
``sys.argv[1:]`` (tests and other commands call ``main([...])`` in-process), a user error -- one of
the exception types the command names, each meaning "bad input, nothing written" -- becomes one
line ``error: <message>`` on stderr and exit code 2 (no traceback), and Ctrl-C outside a
command's own handling exits 130 (128 + SIGINT) without a traceback.  A ``SystemExit`` (argparse's
``--help`` and usage errors, already printed) becomes its code, so ``main([...])`` called in-process
returns it instead of ending the caller.  Exit codes 0/1/3 and the rest stay the command's own.
Arguments keep one of two forms, both parsed here:
``key=value`` config overrides (dotted keys, :func:`platform.run.config.parse_overrides`) and
``--flags`` (argparse), both taken apart by :func:`parse`; the checkpoint is ``--checkpoint PATH``
in every command (:func:`add_checkpoint`; ``ckpt=PATH``, the first spelling, is read as the same).

``models/__main__.py``, ``datamodules/write.py`` and ``benchmarks/`` keep their own copy: they
may not import the platform (dependencies point ``platform -> models, datamodules``).
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Callable, Sequence

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C'd command


def user_error(error: BaseException | str) -> int:
    """Print ``error: <message>`` on stderr; the exit code of a user error (2)."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR


def entry(errors: tuple[type[BaseException], ...] = ()) -> Callable:
    """Decorate ``main(argv: list[str]) -> int``: ``argv`` defaults to ``sys.argv[1:]``; ``errors``
    become :func:`user_error` (exit 2); KeyboardInterrupt exits 130; SystemExit returns its code."""

    def wrap(main: Callable[[list[str]], int]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            try:
                return main(list(sys.argv[1:] if argv is None else argv))
            except errors as e:
                return user_error(e)
            except KeyboardInterrupt:
                return EXIT_INTERRUPTED
            except SystemExit as e:  # --help, or a usage error argparse already printed
                return exit_code(e)

        return run

    return wrap


def exit_code(e: SystemExit) -> int:
    """The status ``sys.exit`` would give: None is 0, an int itself, anything else is printed and
    is 1 (Python's own rule)."""
    if e.code is None or isinstance(e.code, int):
        return int(e.code or 0)
    print(e.code, file=sys.stderr)
    return 1


CHECKPOINT = "--checkpoint"
# The ``name=value`` spellings evaluate, predict and export had first; still read, as their flags.
ALIASES = {"ckpt": CHECKPOINT, "protocol": "--protocol"}


def command_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m platform.<name>`` that takes config overrides: ``--help`` prints
    ``doc``, the command's flags and how ``key=value`` overrides work."""
    return argparse.ArgumentParser(
        prog=f"python -m platform.{name}",
        description=doc,
        epilog=OVERRIDES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_checkpoint(
    parser: argparse.ArgumentParser, *, required: bool = True, many: bool = False, help: str = ""
) -> None:
    """The checkpoint, spelled the same in every command: ``--checkpoint PATH`` (also ``ckpt=PATH``)."""
    parser.add_argument(
        CHECKPOINT,
        dest="checkpoint",
        metavar="PATH",
        required=required,
        action="append" if many else "store",
        help=(help or "a checkpoint (runs/<name>/checkpoints/*.ckpt)")
        + ("; repeat for several" if many else "")
        + " (ckpt=PATH is the same)",
    )


def _unaliased(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    out = []
    for a in argv:
        key, eq, value = a.partition("=")
        flag = ALIASES.get(key)
        if eq and flag and flag in parser._option_string_actions:
            out += [flag, value]
        else:
            out.append(a)
    return out


def parse(
    parser: argparse.ArgumentParser, argv: Sequence[str], *, overrides: bool = True
) -> tuple[argparse.Namespace, list[str]]:
    """The one parser of every command's arguments: the command's own ``--flags`` and positionals
    (argparse; ``--help`` lists them) and, where the command takes them, ``key=value`` config
    overrides (returned in order); ``ckpt=PATH`` / ``protocol=NAME`` are read as ``--checkpoint`` /
    ``--protocol``.  Anything else is argparse's usage error (exit 2)."""
    argv = _unaliased(parser, argv)
    if not overrides:
        return parser.parse_args(argv), []
    pairs = [a for a in argv if _OVERRIDE.match(a)]
    return parser.parse_args([a for a in argv if not _OVERRIDE.match(a)]), pairs


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")  # key=value (a path such as runs/a=b is not one)


OVERRIDES_EPILOG = (
    "key=value arguments (dotted keys, e.g. data.num_workers=4 data.path=DIR) override the run's "
    "saved configuration, as for python -m platform.train (python -m platform.train --help lists "
    "every key)."
)
