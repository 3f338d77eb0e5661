"""Benchmark scripts, run from the project root as modules: ``python -m bench.<name>`` (see each
module's docstring and the README's "Measured figures")."""
