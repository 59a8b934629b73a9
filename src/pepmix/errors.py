"""Exceptions for problems in the user's input.

Every error raised for bad input derives from :class:`PepmixError`. Its message is one line that
says what is wrong and where (file, column, run, config key); the workflow prints it without a
traceback and exits non-zero.
"""

from __future__ import annotations


class PepmixError(Exception):
    """Base class for errors caused by the user's data, sample sheet or configuration."""


class ConfigError(PepmixError):
    """The configuration file is malformed or inconsistent."""


class InputFormatError(PepmixError):
    """An input table does not have the layout its declared format requires."""


class SampleSheetError(PepmixError):
    """The sample sheet is malformed or does not match the runs in the data."""


class DesignError(PepmixError):
    """The experimental design cannot support the requested model or contrasts."""
