"""tttLRM API at the module path of the official code.

``from mapping.tttlrm import load_model, normalize_poses, to_world``. The implementation lives in
:mod:`mapping.gaussians`; importing this module imports torch (``import mapping`` does not).
"""

from mapping.gaussians.loading import CheckpointError, convert_to_safetensors, load_model
from mapping.gaussians.network import TttLrm
from mapping.gaussians.poses import normalize_poses, to_world

__all__ = ["CheckpointError", "TttLrm", "convert_to_safetensors", "load_model", "normalize_poses", "to_world"]
