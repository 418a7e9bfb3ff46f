"""``slam bench``: compare frontends over many sequences with named protocols, locally or on Ray.

Modules: :mod:`~slam.bench.protocols` (presets and their sources), :mod:`~slam.bench.runner` (one run
per child process; local pool or Ray tasks), :mod:`~slam.bench.child` (the child's entry),
:mod:`~slam.bench.tables` (rows, ``results.{csv,json,md}``), :mod:`~slam.bench.plots`,
:mod:`~slam.bench.sweep` (the command).
"""

from slam.bench.protocols import PROTOCOLS, Protocol, get_protocol
from slam.bench.sweep import BenchOptions, run_bench

__all__ = ["PROTOCOLS", "BenchOptions", "Protocol", "get_protocol", "run_bench"]
