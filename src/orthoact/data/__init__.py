"""Data shipped with the package (small JSON files, e.g. the demo's measured seed spread)."""
