"""Frames held losslessly compressed in memory, for the input frames that keyframes keep.

A keyframe keeps its input :class:`~slam.types.Frame` for loop verification (``frontend.pair``) and TSDF
re-integration, read rarely but held for the whole run: at 640x480 RGB-D 2.1 MB, for a KITTI stereo pair
2.7 MB per keyframe. :func:`pack_frame` returns a :class:`PackedFrame`, a ``Frame`` whose ``rgb``, ``right``
and ``depth`` are stored compressed and decoded bit-exactly on access:

* 8/16-bit images as PNG (fast setting), a three-channel image whose channels are equal (a grey camera
  read as RGB, e.g. KITTI ``image_0``/``image_1``) as one channel;
* anything else (float32 depth in metres) as zlib-compressed raw bytes.

A decoded array is shared while anything still holds it (a weak reference), so one consumer reading an
attribute twice gets the same object; once released it is decoded again on the next access.
"""

from __future__ import annotations

import weakref
import zlib
from dataclasses import dataclass, fields

import cv2
import numpy as np

from slam.types import Frame

#: the fields of :class:`Frame` that are stored compressed
PACKED_FIELDS = ("rgb", "depth", "right")
#: PNG compression level: 1 (fast) keeps encoding at ~10-20 ms per 640x480 image
PNG_LEVEL = 1


@dataclass(frozen=True)
class _Blob:
    """One compressed array: ``data`` bytes, the array's ``shape`` and ``dtype``, and how it was coded."""

    data: bytes
    shape: tuple[int, ...]
    dtype: str
    codec: str  # 'png', 'png-grey' (one of three equal channels stored) or 'zlib'

    @staticmethod
    def encode(array: np.ndarray) -> "_Blob":
        array = np.asarray(array)
        shape, dtype = tuple(array.shape), array.dtype.str
        channels_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
        image = array.dtype in (np.uint8, np.uint16) and channels_ok
        if image and array.size:
            codec, plane = "png", array
            if array.ndim == 3 and array.shape[2] == 3 and (array[..., 0] == array[..., 1]).all() \
                    and (array[..., 0] == array[..., 2]).all():
                codec, plane = "png-grey", array[..., 0]
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(plane), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
            if ok:
                return _Blob(buf.tobytes(), shape, dtype, codec)
        return _Blob(zlib.compress(np.ascontiguousarray(array).tobytes(), 1), shape, dtype, "zlib")

    def decode(self) -> np.ndarray:
        if self.codec == "zlib":
            return np.frombuffer(zlib.decompress(self.data), dtype=np.dtype(self.dtype)).reshape(self.shape).copy()
        plane = cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_UNCHANGED)
        if self.codec == "png-grey":
            plane = np.repeat(plane[..., None], 3, axis=2)
        return plane.reshape(self.shape).astype(np.dtype(self.dtype), copy=False)


def _packed_property(name: str) -> property:
    def get(self: "PackedFrame") -> np.ndarray | None:
        blob = self.__dict__.get(f"_{name}_blob")
        if blob is None:
            return None
        ref = self.__dict__.get(f"_{name}_ref")
        array = ref() if ref is not None else None
        if array is None:
            array = blob.decode()
            self.__dict__[f"_{name}_ref"] = weakref.ref(array)
        return array

    def set_(self: "PackedFrame", value: np.ndarray | None) -> None:  # only the dataclass __init__ calls it
        self.__dict__[f"_{name}_blob"] = None if value is None else _Blob.encode(value)
        self.__dict__.pop(f"_{name}_ref", None)

    return property(get, set_, doc=f"``Frame.{name}``, decoded from its compressed copy on access.")


class PackedFrame(Frame):
    """A :class:`Frame` whose images and depth are held compressed (see the module docstring); every other
    field, and the behaviour of ``dataclasses.replace``, is that of ``Frame``."""

    rgb = _packed_property("rgb")
    depth = _packed_property("depth")
    right = _packed_property("right")

    def packed_bytes(self) -> int:
        """Bytes held by the compressed arrays."""
        return sum(len(blob.data) for blob in (self.__dict__.get(f"_{n}_blob") for n in PACKED_FIELDS) if blob)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_ref")}  # weak references do not pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def pack_frame(frame: Frame) -> PackedFrame:
    """``frame`` with its arrays compressed (returned unchanged if already packed)."""
    if isinstance(frame, PackedFrame):
        return frame
    return PackedFrame(**{f.name: getattr(frame, f.name) for f in fields(Frame)})
