"""Keyframe frames held compressed: bit-exact round trip, shared decodes, dataclass behaviour, memory."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from slam.packed_frame import PackedFrame, pack_frame
from slam.types import Frame


@pytest.fixture()
def frame() -> Frame:
    rng = np.random.default_rng(0)
    # a smooth colour image (compresses like a photo) and depth with holes, in metres
    y, x = np.mgrid[0:120, 0:160]
    rgb = np.stack([(x + y) % 256, (2 * x) % 256, (3 * y) % 256], axis=2).astype(np.uint8)
    depth = (1.0 + 0.01 * x + rng.normal(0, 0.001, x.shape)).astype(np.float32)
    depth[:, :7] = 0.0
    grey = np.repeat(((x * y) % 256).astype(np.uint8)[..., None], 3, axis=2)
    return Frame(index=4, timestamp=2.5, rgb=rgb, depth=depth, K=np.eye(3), gt_pose=np.eye(4), source="f.png",
                 right=grey, baseline=0.54)


def test_round_trip_is_bit_exact(frame):
    packed = pack_frame(frame)
    assert isinstance(packed, PackedFrame) and isinstance(packed, Frame)
    for name in ("rgb", "depth", "right"):
        original, decoded = getattr(frame, name), getattr(packed, name)
        assert decoded.dtype == original.dtype and decoded.shape == original.shape
        np.testing.assert_array_equal(decoded, original)
    assert (packed.index, packed.timestamp, packed.source, packed.baseline) == (4, 2.5, "f.png", 0.54)
    assert packed.size == frame.size


def test_compresses_and_stores_a_grey_pair_as_one_channel(frame):
    packed = pack_frame(frame)
    raw = frame.rgb.nbytes + frame.depth.nbytes + frame.right.nbytes
    assert packed.packed_bytes() < raw / 2
    # grey noise does not compress: stored as one channel it takes ~1 byte per pixel, as three ~3
    noise = np.random.default_rng(1).integers(0, 256, (120, 160), dtype=np.uint8)
    grey_only = pack_frame(Frame(index=0, timestamp=0.0, rgb=np.repeat(noise[..., None], 3, axis=2)))
    assert grey_only.packed_bytes() < 1.2 * noise.size
    np.testing.assert_array_equal(grey_only.rgb[..., 2], noise)


def test_a_held_decode_is_shared_and_missing_arrays_stay_none(frame):
    packed = pack_frame(frame)
    rgb = packed.rgb
    assert packed.rgb is rgb  # same object while someone holds it
    bare = pack_frame(Frame(index=0, timestamp=0.0, rgb=frame.rgb))
    assert bare.depth is None and bare.right is None
    assert pack_frame(packed) is packed


def test_behaves_like_a_frozen_frame(frame):
    packed = pack_frame(frame)
    with pytest.raises(dataclasses.FrozenInstanceError):
        packed.rgb = frame.rgb
    moved = dataclasses.replace(packed, gt_pose=2 * np.eye(4))
    assert isinstance(moved, PackedFrame) and moved.gt_pose[0, 0] == 2.0
    np.testing.assert_array_equal(moved.depth, frame.depth)
    again = pickle.loads(pickle.dumps(packed))
    np.testing.assert_array_equal(again.right, frame.right)


def test_backend_keyframes_keep_packed_frames_unless_disabled(frame):
    from backends import BackendConfig, SlamBackend
    from slam.types import FrontendOutput

    class _Still:  # a metric frontend output for a camera that does not move
        def output(self, f: Frame) -> FrontendOutput:
            z = np.where(f.depth > 0, f.depth, 1.0)
            h, w = z.shape
            v, u = np.mgrid[0:h, 0:w]
            points = np.stack([(u - w / 2) * z / 100, (v - h / 2) * z / 100, z], -1).astype(np.float32)
            return FrontendOutput(pose=np.eye(4), points=points, confidence=np.ones((h, w), np.float32),
                                  K=np.array([[100.0, 0, w / 2], [0, 100.0, h / 2], [0, 0, 1]]), metric=True)

    for pack in (True, False):
        cfg = BackendConfig.from_dict({"preset": "odometry", "sync": True, "keyframe": {"pack_frame": pack}})
        backend = SlamBackend(cfg, None, metric=True)
        backend.process(frame, _Still().output(frame))
        backend.finalize()
        (kf,) = backend.keyframes()
        backend.close()
        assert isinstance(kf.frame, PackedFrame) is pack
        np.testing.assert_array_equal(kf.frame.depth, frame.depth)


def test_packing_is_on_for_stereo_and_off_for_rgbd():
    from slam.config import load_run_config

    assert load_run_config(overrides=["frontend=stereo"]).backend.keyframe.pack_frame
    assert not load_run_config(overrides=["frontend=rgbd"]).backend.keyframe.pack_frame
