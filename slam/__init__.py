"""TTSA-SLAM core: types, configuration, datasets, geometry, evaluation, pipeline and CLI.

The core depends on no frontend, backend or mapping implementation; those register themselves by name
and are looked up through the registries in :mod:`slam.registry`.
"""

__version__ = "0.1.0"
