"""Errors that mean "your input cannot work", reported as one line naming what to change."""


class ConfigError(ValueError):
    """A setting that cannot work; the message names it."""


class RunDirectoryError(ValueError):
    """A run or sweep directory that cannot be written: in use, or holding a result to keep."""
