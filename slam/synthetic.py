"""A synthetic RGB-D loop for ``slam demo``: a textured box room rendered with Open3D's ray caster.

The scene is a 6 x 5 x 2.6 m room (world frame: z up, floor at z = 0, room centred on the origin) with
furniture-like boxes along the walls and a low table in the middle. Every face carries a procedural,
non-periodic texture (multi-scale noise under random rectangles, discs or strokes; two tint colours per
face) with enough gradient for photometric odometry, and Lambertian shading from a fixed directional
light (view-independent, so the brightness-constancy assumption of RGB-D odometry holds). The camera (OpenCV axes) circles the room
centre on an ellipse, looking outwards and sideways at the walls with a gently varying pitch and roll,
and its path closes: frame ``n`` would coincide with frame 0.

Output is a TUM-layout folder that :class:`slam.datasets.tum.TumDataset` reads unchanged::

    rgb/<t>.png (8-bit RGB, lossless), depth/<t>.png (uint16, metres * 5000, 0 = no hit),
    rgb.txt, depth.txt, groundtruth.txt (T_wc), calibration.txt ('fx fy cx cy')

Colour is anti-aliased (quincunx: each pixel averages its centre and its four corners); depth is the
exact z-depth through each pixel centre. Rendering is deterministic for a given ``(n_frames, size, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d

from slam.geometry import rotmat_to_quat

DEPTH_FACTOR = 5000.0  # TUM convention: uint16 value = metres * 5000
FPS = 30.0
ROOM = (np.array([-3.0, -2.5, 0.0]), np.array([3.0, 2.5, 2.6]))
#: furniture boxes (min corner, max corner), metres
FURNITURE = (
    ((-2.9, -1.8, 0.0), (-2.3, -0.6, 1.9)),   # tall cabinet, west wall
    ((-1.2, 1.8, 0.0), (0.6, 2.45, 0.75)),    # sideboard, north wall
    ((1.6, 1.5, 0.0), (2.9, 2.4, 0.45)),      # low bench, north-east corner
    ((2.4, -1.0, 0.0), (2.95, 0.8, 1.2)),     # shelf, east wall
    ((-0.6, -2.45, 0.0), (1.0, -1.7, 0.9)),   # desk, south wall
    ((-2.6, 1.2, 0.0), (-1.9, 1.9, 0.5)),     # crate, north-west
    ((-0.35, -0.3, 0.0), (0.35, 0.3, 0.4)),   # coffee table, centre
    ((1.2, -2.45, 1.3), (2.6, -2.35, 2.1)),   # picture frame, south wall
    ((-0.8, 2.4, 1.2), (0.8, 2.5, 2.0)),      # picture frame, north wall
)
LIGHT = np.array([0.4, -0.3, 0.87]) / np.linalg.norm([0.4, -0.3, 0.87])
TEXEL = 0.01  # metres per texel
TEX_SIZE = 512


@dataclass(frozen=True)
class Quad:
    """A textured rectangle: ``origin + a*u + b*v`` for a in [0, |u|], b in [0, |v|] (u, v unit)."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    size: tuple[float, float]
    normal: np.ndarray


def _box_quads(lo: np.ndarray, hi: np.ndarray, inward: bool) -> list[Quad]:
    """The 6 faces of an axis-aligned box; normals point out of the box, or into it when ``inward``."""
    quads = []
    ext = hi - lo
    for axis in range(3):
        a, b = [i for i in range(3) if i != axis]
        for side in (0, 1):
            origin = lo.copy()
            origin[axis] = hi[axis] if side else lo[axis]
            normal = np.zeros(3)
            normal[axis] = (1.0 if side else -1.0) * (-1.0 if inward else 1.0)
            u, v = np.eye(3)[a], np.eye(3)[b]
            quads.append(Quad(origin, u, v, (float(ext[a]), float(ext[b])), normal))
    return quads


def build_scene() -> list[Quad]:
    """All quads of the room (inward-facing shell first, then the furniture)."""
    quads = _box_quads(*ROOM, inward=True)
    for lo, hi in FURNITURE:
        quads += _box_quads(np.array(lo, float), np.array(hi, float), inward=False)
    return quads


def _value_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth tileable-ish noise: a random ``cells x cells`` grid upsampled bicubically to TEX_SIZE."""
    grid = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (TEX_SIZE, TEX_SIZE), interpolation=cv2.INTER_CUBIC)


def make_textures(rng: np.random.Generator, count: int = 6) -> np.ndarray:
    """``count`` non-periodic grey patterns, (count, TEX_SIZE, TEX_SIZE) float32 in [0, 1].

    Multi-scale value noise under random rectangles, discs or line strokes (in turn). Nothing repeats
    within a texture, so that dense alignment has no aliasing ambiguity (checkers or stripes would).
    """
    out = []
    for k in range(count):
        p = (0.3 * _value_noise(rng, 8) + 0.25 * _value_noise(rng, 32) + 0.25 * _value_noise(rng, 96)
             + 0.2 * _value_noise(rng, 256))
        shapes = np.full((TEX_SIZE, TEX_SIZE), -1.0, np.float32)  # -1 = no shape: the noise shows
        for _ in range(500):
            x, y = (int(c) for c in rng.integers(0, TEX_SIZE, 2))
            grey = float(rng.random())
            if k % 3 == 0:  # rectangles
                w, h = (int(c) for c in rng.integers(4, 40, 2))
                cv2.rectangle(shapes, (x, y), (x + w, y + h), grey, -1)
            elif k % 3 == 1:  # discs
                cv2.circle(shapes, (x, y), int(rng.integers(3, 20)), grey, -1)
            else:  # strokes
                dx, dy = (int(c) for c in rng.integers(-40, 40, 2))
                cv2.line(shapes, (x, y), (x + dx, y + dy), grey, int(rng.integers(1, 6)))
        p = np.where(shapes >= 0, 0.3 * p + 0.7 * shapes, p)
        p = cv2.GaussianBlur(p.astype(np.float32), (3, 3), 0.7)
        out.append((p - p.min()) / (p.max() - p.min() + 1e-6))
    return np.stack(out).astype(np.float32)


def camera_path(n_frames: int) -> np.ndarray:
    """(n, 4, 4) camera-to-world poses (OpenCV camera axes) of a closed loop around the room centre."""
    poses = np.zeros((n_frames, 4, 4))
    up = np.array([0.0, 0.0, 1.0])
    for i in range(n_frames):
        th = 2 * np.pi * i / n_frames
        pos = np.array([1.1 * np.cos(th), 0.9 * np.sin(th), 1.35 + 0.08 * np.sin(2 * th)])
        yaw = th + 0.6  # outwards and a little sideways
        pitch = np.radians(-14.0 + 6.0 * np.sin(3 * th))
        forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward], axis=1)
        roll = np.radians(3.0 * np.sin(2 * th))
        c, s = np.cos(roll), np.sin(roll)
        R = R @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        poses[i, :3, :3], poses[i, :3, 3], poses[i, 3, 3] = R, pos, 1.0
    return poses


def demo_intrinsics(size: tuple[int, int]) -> np.ndarray:
    """3x3 K for an (h, w) image: about 64 degrees horizontal field of view, centred principal point."""
    h, w = size
    f = 0.8125 * w
    return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])


class DemoRenderer:
    """Ray-casts the demo room: colour (anti-aliased) and z-depth for a camera pose."""

    def __init__(self, size: tuple[int, int], seed: int = 0):
        self.size = size
        self.K = demo_intrinsics(size)
        rng = np.random.default_rng(seed)
        self.quads = build_scene()
        self.textures = make_textures(rng)
        n = len(self.quads)
        self.tex_index = rng.integers(0, len(self.textures), n)
        self.tex_offset = rng.random((n, 2)) * TEX_SIZE
        self.colour_a = rng.uniform(0.1, 0.55, (n, 3))  # dark and bright tint: every face has contrast
        self.colour_b = rng.uniform(0.6, 1.0, (n, 3))
        self.origins = np.stack([q.origin for q in self.quads]).astype(np.float32)
        self.u = np.stack([q.u for q in self.quads]).astype(np.float32)
        self.v = np.stack([q.v for q in self.quads]).astype(np.float32)
        self.shade = np.array([0.6 + 0.4 * max(0.0, float(q.normal @ LIGHT)) for q in self.quads], np.float32)
        self.colour_a, self.colour_b = self.colour_a.astype(np.float32), self.colour_b.astype(np.float32)
        self.tex_offset = self.tex_offset.astype(np.float32)
        self.scene = o3d.t.geometry.RaycastingScene()
        verts, tris = [], []
        for k, q in enumerate(self.quads):
            su, sv = q.size
            o = q.origin
            verts += [o, o + su * q.u, o + su * q.u + sv * q.v, o + sv * q.v]
            tris += [[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]]  # triangle id // 2 = quad
        self.scene.add_triangles(o3d.core.Tensor(np.asarray(verts, np.float32)),
                                 o3d.core.Tensor(np.asarray(tris, np.uint32)))
        h, w = size
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        vc, uc = np.mgrid[0 : h + 1, 0 : w + 1].astype(np.float64) - 0.5
        # pixel centres (depth + colour), then the (h+1)x(w+1) pixel corners (colour): quincunx sampling
        pixels = np.concatenate([np.stack([u, v], -1).reshape(-1, 2), np.stack([uc, vc], -1).reshape(-1, 2)])
        self._rays_cam = np.stack([(pixels[:, 0] - self.K[0, 2]) / self.K[0, 0],
                                   (pixels[:, 1] - self.K[1, 2]) / self.K[1, 1],
                                   np.ones(len(pixels))], -1).astype(np.float32)

    def _cast(self, T_wc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rays through the pixel centres and corners: (z-depth (N,), quad id (N,), world hit points (N, 3)),
        N = h*w + (h+1)*(w+1); t_hit is the z-depth because the camera-frame directions have z = 1."""
        rays = np.empty((len(self._rays_cam), 6), np.float32)
        rays[:, :3] = T_wc[:3, 3]
        rays[:, 3:] = self._rays_cam @ T_wc[:3, :3].T.astype(np.float32)
        hit = self.scene.cast_rays(o3d.core.Tensor.from_numpy(rays))
        t = hit["t_hit"].numpy()
        ok = np.isfinite(t)
        t = np.where(ok, t, 0.0).astype(np.float32)
        quad = np.where(ok, hit["primitive_ids"].numpy() // 2, 0).astype(np.int64)
        return t, quad, rays[:, :3] + rays[:, 3:] * t[:, None]

    def _shade(self, quad: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(N, 3) linear RGB in [0, 1] of the given hit points on the given quads (bilinear texture)."""
        rel = points - self.origins[quad]
        s = np.einsum("ij,ij->i", rel, self.u[quad]) / TEXEL + self.tex_offset[quad, 0]
        t = np.einsum("ij,ij->i", rel, self.v[quad]) / TEXEL + self.tex_offset[quad, 1]
        s0, t0 = np.floor(s), np.floor(t)
        fs, ft = (s - s0)[:, None], (t - t0)[:, None]
        s0, t0 = s0.astype(np.int64) % TEX_SIZE, t0.astype(np.int64) % TEX_SIZE
        s1, t1 = (s0 + 1) % TEX_SIZE, (t0 + 1) % TEX_SIZE
        base = self.tex_index[quad] * (TEX_SIZE * TEX_SIZE)
        flat = self.textures.reshape(-1)
        p00, p01 = flat[base + t0 * TEX_SIZE + s0], flat[base + t0 * TEX_SIZE + s1]
        p10, p11 = flat[base + t1 * TEX_SIZE + s0], flat[base + t1 * TEX_SIZE + s1]
        p = ((1 - ft) * ((1 - fs) * p00[:, None] + fs * p01[:, None])
             + ft * ((1 - fs) * p10[:, None] + fs * p11[:, None]))
        return (self.colour_a[quad] * (1 - p) + self.colour_b[quad] * p) * self.shade[quad][:, None]

    def render(self, T_wc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rgb HxWx3 uint8, depth HxW float32 metres) seen from camera-to-world pose ``T_wc``."""
        h, w = self.size
        n = h * w
        depth, quad, points = self._cast(T_wc)
        colour = self._shade(quad, points)
        corners = colour[n:].reshape(h + 1, w + 1, 3)
        corners = (corners[:-1, :-1] + corners[1:, :-1] + corners[:-1, 1:] + corners[1:, 1:]) / 4
        colour = 0.5 * colour[:n].reshape(h, w, 3) + 0.5 * corners
        rgb = np.clip(np.round(255 * colour), 0, 255).astype(np.uint8)
        return rgb, depth[:n].reshape(h, w)


def _stamp(i: int) -> str:
    return f"{i / FPS:.6f}"


def render_demo_sequence(out_dir: Path, n_frames: int = 150, size: tuple[int, int] = (240, 320),
                         seed: int = 0) -> Path:
    """Render the demo loop into ``out_dir`` (TUM layout, see the module docstring) and return it.

    Args:
        out_dir: folder to write (created; existing files of the same names are overwritten).
        n_frames: number of frames of the closed loop (>= 2).
        size: (height, width) of the images.
        seed: seed of the textures and colours (the geometry and the path do not depend on it).

    Returns:
        ``out_dir`` as a Path.
    """
    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2, got {n_frames}")
    out_dir = Path(out_dir)
    (out_dir / "rgb").mkdir(parents=True, exist_ok=True)
    (out_dir / "depth").mkdir(parents=True, exist_ok=True)
    renderer = DemoRenderer(size, seed)
    poses = camera_path(n_frames)
    rgb_lines = ["# color images (synthetic demo room)", "# timestamp filename"]
    depth_lines = ["# depth maps (uint16, metres * 5000)", "# timestamp filename"]
    gt_lines = ["# ground truth camera-to-world poses", "# timestamp tx ty tz qx qy qz qw"]
    for i, T_wc in enumerate(poses):
        rgb, depth = renderer.render(T_wc)
        stamp = _stamp(i)
        cv2.imwrite(str(out_dir / "rgb" / f"{stamp}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        raw = np.clip(np.round(depth * DEPTH_FACTOR), 0, 65535).astype(np.uint16)
        cv2.imwrite(str(out_dir / "depth" / f"{stamp}.png"), raw)
        rgb_lines.append(f"{stamp} rgb/{stamp}.png")
        depth_lines.append(f"{stamp} depth/{stamp}.png")
        q = rotmat_to_quat(T_wc[:3, :3])
        t = T_wc[:3, 3]
        gt_lines.append(f"{stamp} " + " ".join(f"{x:.9f}" for x in (*t, *q)))
    K = renderer.K
    (out_dir / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (out_dir / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (out_dir / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    (out_dir / "calibration.txt").write_text(f"{K[0, 0]:.6f} {K[1, 1]:.6f} {K[0, 2]:.6f} {K[1, 2]:.6f}\n")
    return out_dir
