"""The one error hierarchy of benchtrack; the CLI maps it to exit codes in one place."""

from __future__ import annotations


class BenchtrackError(Exception):
    """Base of every error benchtrack reports to a user (exit code 2 unless stated)."""

    exit_code = 2


class UsageError(BenchtrackError):
    """Bad command-line input: unknown level, unknown benchmark, bad duration."""


class ConfigError(BenchtrackError):
    """A malformed or inconsistent configuration file."""


class DiscoveryError(BenchtrackError):
    """A benchmark folder that is missing or holds nothing runnable."""


class ResultFormatError(BenchtrackError):
    """A result file that is not one benchtrack can read (wrong format, version or NaN)."""


class TrackingError(BenchtrackError):
    """The tracking store cannot be reached, created or written."""
