"""Prediction heads of the CUT3R-family network: DPT (512 model) and linear (224 model)."""

from frontends.cut3r.model.heads.dpt import DPTPts3dPoseHead
from frontends.cut3r.model.heads.linear import LinearPts3dPoseHead

__all__ = ["DPTPts3dPoseHead", "LinearPts3dPoseHead"]
