"""benchtrack: performance- and memory-regression tracking for Python, logged to MLflow."""

from benchtrack.errors import BenchtrackError
from benchtrack.profiler import MemoryProfiler
from benchtrack.suite import benchmark

__version__ = "0.1.0"

__all__ = ["BenchtrackError", "MemoryProfiler", "__version__", "benchmark"]
