"""benchtrack: performance- and memory-regression tracking for Python, logged to MLflow."""

from benchtrack.errors import BenchtrackError
from benchtrack.suite import benchmark

__version__ = "0.1.0"

__all__ = ["BenchtrackError", "__version__", "benchmark"]
