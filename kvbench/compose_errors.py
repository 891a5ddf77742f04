"""Hydra's composition errors, condensed to one line that names the key.

Hydra reports a bad override over several lines (the override, a hint, OmegaConf's message with
`full_key:` and `object_type=`, the config search path). `one_line` keeps what a user acts on:

    workload.rat: no such setting in workload (ShareGPTConfig); `kvbench run --help` lists them
    workload.rate=fast: 'fast' is not a float
    strategy=pagd: no such choice; choose from contiguous, orca_max, ...
    workload.rate: not an override (write key=value)
"""

from __future__ import annotations

import re

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from kvbench.errors import ConfigError

_FULL_KEY = re.compile(r"full_key:\s*(\S+)")
_OBJECT_TYPE = re.compile(r"object_type=(\w+)")
_NOT_CONVERTED = re.compile(r"Value '(.*)' of type '\w+' could not be converted to (\w+)")
_MISSING_OPTION = re.compile(r"Could not find '([^'/]+)/([^']+)'")
_PARSE = re.compile(r"Error parsing override '([^']*)'")
_OVERRIDE = re.compile(r"override (\S+=\S*)")
COMPOSE_ERRORS = (HydraException, OmegaConfBaseException)


def one_line(err: BaseException) -> str:
    """A Hydra or OmegaConf composition error as one line naming the key (or the first line of anything else)."""
    text = str(err)
    cause = str(err.__cause__) if err.__cause__ is not None else ""
    both = f"{text}\n{cause}"
    if isinstance(err, MissingConfigException) or _MISSING_OPTION.search(text):
        match = _MISSING_OPTION.search(text)
        if match:
            group, name = match.groups()
            options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.MULTILINE)
            choices = f"; choose from {', '.join(options)}" if options else ""
            return f"{group}={name}: no such choice{choices}"
    if isinstance(err, OverrideParseException):
        match = _PARSE.search(text)
        return f"{match.group(1) if match else text.splitlines()[0]}: not an override (write key=value)"
    key_match = _FULL_KEY.search(both)
    key = key_match.group(1) if key_match else None
    converted = _NOT_CONVERTED.search(both)
    if converted and key:
        value, kind = converted.groups()
        return f"{key}={value}: {value!r} is not {'an' if kind[0] in 'AEIOU' else 'a'} {kind.lower()}"
    if key and ("not in" in both or "Could not override" in both):
        owner = _OBJECT_TYPE.search(both)
        group = key.rsplit(".", 1)[0] if "." in key else "the top level"
        where = f"{group} ({owner.group(1)})" if owner else group
        return f"{key}: no such setting in {where}; `kvbench run --help` lists them"
    if key:
        first = next((line for line in cause.splitlines() if line.strip()), text.splitlines()[0])
        return f"{key}: {first.strip()}"
    override = _OVERRIDE.search(text)
    first = next((line for line in text.splitlines() if line.strip()), type(err).__name__)
    return f"{override.group(1)}: {first}" if override and override.group(1) not in first else first


def compose_or_raise(overrides: list[str]):
    """(config, chosen presets) for these overrides, as `kvbench run` composes them; a bad override
    raises ConfigError with one line naming the key."""
    from kvbench.reproduce.batch import compose_run

    try:
        return compose_run(tuple(overrides))
    except COMPOSE_ERRORS as err:
        raise ConfigError(one_line(err)) from err


MULTIRUN_FLAGS = ("-m", "--multirun")


def check_run_arguments(args: list[str]) -> None:
    """Compose what `kvbench run ARGS` will run before Hydra does, so that a bad override fails with
    one line naming the key (ConfigError) instead of Hydra's multi-line report. A sweep is checked on
    enough of its jobs that every swept value is composed once. Arguments other than overrides
    (--help, --cfg, ...) are left to Hydra."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in args if a not in MULTIRUN_FLAGS]
    if any(a.startswith("-") for a in overrides):
        return
    if not any(a in MULTIRUN_FLAGS for a in args):
        compose_or_raise(overrides)
        return
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except COMPOSE_ERRORS as err:
        raise ConfigError(one_line(err)) from err
    try:
        jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except COMPOSE_ERRORS:
        return  # a sweep only the config loader can expand (glob over a group): Hydra checks it itself
    seen: set[str] = set()
    for job in jobs:
        if not set(job) <= seen:
            compose_or_raise(list(job))
            seen |= set(job)
