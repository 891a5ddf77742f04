"""One error style for every subcommand.

An input that cannot work (a bad setting, a missing file, a workload the pool cannot serve) is one
line on stderr, `kvbench: error: <message>`, and exit code 2; `KVBENCH_DEBUG=1` adds the
traceback. Ctrl-C exits with 130 and no traceback. Anything else is a bug: its traceback shows.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

from kvbench.compose_errors import COMPOSE_ERRORS
from kvbench.compose_errors import one_line as compose_one_line
from kvbench.scheduler import SchedulerError

# ConfigError is a ValueError; input files that are missing, unreadable or malformed raise OSError
# or ValueError, and a workload whose optional dependency is missing raises ImportError with the
# pip command to run.
USER_ERRORS = (SchedulerError, ValueError, OSError, ImportError, *COMPOSE_ERRORS)
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def fail(err: BaseException) -> int:
    """Report an input error in one line (the traceback too with KVBENCH_DEBUG); the exit code."""
    if os.environ.get("KVBENCH_DEBUG"):
        traceback.print_exception(err)
    print(f"kvbench: error: {one_line(err)}", file=sys.stderr)
    return 2


def one_line(err: BaseException) -> str:
    """The message on one line: a composition error names the key (kvbench.compose_errors); for any
    other, Hydra's list of a group's options becomes "(valid: a, b, ...)", and the first line of the
    error's cause follows in parentheses."""
    if isinstance(err, COMPOSE_ERRORS):
        return compose_one_line(err)
    options = getattr(err, "options", None)  # hydra.errors.MissingConfigException
    first, *rest = str(err).strip().splitlines() or [type(err).__name__]
    if options:
        return f"{first} (valid: {', '.join(options)})"
    text = " ".join([first, *(line.strip() for line in rest if line.strip())])
    # A composition error's cause was already condensed into the message (kvbench.compose_errors).
    cause = str(err.__cause__).strip().splitlines()[:1] if err.__cause__ and not isinstance(
        err.__cause__, COMPOSE_ERRORS) else []
    return f"{text} ({cause[0]})" if cause and cause[0] not in text else text


def run_command(command: str, main: Callable[[list[str]], int], args: list[str]) -> int:
    """Run a subcommand's `main(args)` with the shared handling of input errors and Ctrl-C."""
    try:
        return main(args)
    except KeyboardInterrupt:
        if os.environ.get("KVBENCH_DEBUG"):
            traceback.print_exc()
        print(f"kvbench {command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except USER_ERRORS as err:
        return fail(err)
