"""Each run's `kvbench.log`: what happened, as log records from the `kvbench` loggers.

Under `kvbench run` Hydra's job logging writes `<run dir>/kvbench.log` (conf/config.yaml keeps its
console handler at WARNING, so the terminal shows only the summary table). Runs started another way
(`kvbench.run()` in a notebook, `kvbench reproduce`) get the same file from `run_log`, which adds a
file handler for the run's duration unless one already writes there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG_FILE = "kvbench.log"
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def _already_logged(path: Path) -> bool:
    for logger in (logging.getLogger(), logging.getLogger("kvbench")):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).resolve() == path.resolve():
                return True
    return False


@contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    path = Path(run_dir) / LOG_FILE
    if _already_logged(path):
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("kvbench")
    previous_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()
