"""Gaussian-splat maps from SLAM keyframes with tttLRM (optional mapping plugin).

- :mod:`~mapping.gaussians.arch`: architecture read from the official config layout (torch-free).
- :mod:`~mapping.gaussians.network`, :mod:`~mapping.gaussians.fast_weights`: the network.
- :mod:`~mapping.gaussians.loading`: safe checkpoint loading, ``.safetensors`` conversion.
- :mod:`~mapping.gaussians.poses`: window pose normalisation and the way back to the world frame.
- :mod:`~mapping.gaussians.ply`, :mod:`~mapping.gaussians.render`: 3DGS PLY I/O and a small renderer.
- :mod:`~mapping.gaussians.sink`: the mapping sink that runs the model on keyframe windows.

Importing this package does not import torch; the submodules that need it import it themselves.
"""
