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
``--flags`` (argparse); :func:`split_own` takes a command's own ``name=value`` arguments
(``ckpt=``, ``protocol=``) out of the overrides, :func:`split_flags` / :func:`flags_and_overrides`
the argparse flags.

``models/__main__.py``, ``datamodules/write.py`` and ``benchmarks/`` keep their own copy: they
may not import the platform (dependencies point ``platform -> models, datamodules``).
"""

from __future__ import annotations

import argparse
import functools
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


def split_own(argv: Sequence[str], own: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """A command's own ``name=value`` arguments (``ckpt=``, ``protocol=`` ...), and the rest."""
    mine, rest = {}, []
    for a in argv:
        key = a.split("=", 1)[0]
        if "=" in a and key in own:
            mine[key] = a.split("=", 1)[1]
        else:
            rest.append(a)
    return mine, rest


def split_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(``--flags`` and positionals for argparse, ``key=value`` overrides): an argument with
    ``=`` that does not start with ``-`` is an override."""
    flags = [a for a in argv if a.startswith("-") or "=" not in a]
    return flags, [a for a in argv if a not in flags]


def flags_and_overrides(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, list[str]]:
    """``parser``'s flags and positionals, and the ``key=value`` overrides around them; anything
    else is argparse's usage error (exit 2)."""
    args, rest = parser.parse_known_args(list(argv))
    extra = [a for a in rest if "=" in a and not a.startswith("-")]
    if len(extra) != len(rest):
        parser.error(f"unrecognized arguments: {' '.join(a for a in rest if a not in extra)}")
    return args, extra
