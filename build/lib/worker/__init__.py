"""cmdb-worker: the side-effecting layer (Kafka, state, HTTP, metrics, CLI)."""

__version__ = "0.1.0"
"""The one place the version is written: packaging (pyproject), --version and build_info."""
