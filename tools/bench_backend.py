"""Benchmark of the backend's per-keyframe costs on a synthetic graph grown to many keyframes.

The camera circles a loop of ``--lap`` keyframes again and again (with slowly drifting odometry); from the
second lap on, every ``--loop-every``-th keyframe gets a loop edge to the keyframe one lap earlier. Each
keyframe also gets a global descriptor (noisy copy of its place's descriptor) and a top-k retrieval over
all older keyframes outside the recent window. Printed: mean time per keyframe of the incremental graph
update (node + odometry edge + iSAM2, plus the loop edges' extra iSAM2 iterations) and of retrieval,
over the keyframes since the previous row. Graph settings are the defaults of :class:`GraphConfig` (iSAM2 with
partial relinearisation check, relinearising every ``relinearize_skip`` updates; pose read-back limited to
the touched nodes, or the nodes since the loop's older end). BLAS threads add noise on a shared machine:

    OMP_NUM_THREADS=1 python tools/bench_backend.py --keyframes 10000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slam import geometry  # noqa: E402
from backends.config import GraphConfig, KeyframeConfig, LoopClosureConfig  # noqa: E402
from backends.loop_closure import LoopCloser  # noqa: E402
from backends.pose_graph import Edge, PoseGraph  # noqa: E402
from slam.types import Keyframe  # noqa: E402


def _pose(i: int, lap: int) -> np.ndarray:
    a = 2 * np.pi * (i % lap) / lap
    return geometry.make_sim3(Rotation.from_euler("y", -a).as_matrix(), [5 * np.sin(a), 0.0, 5 * np.cos(a)])


def run(n_keyframes: int, lap: int, loop_every: int, use_sim3: bool, report_every: int, seed: int = 0
        ) -> list[dict]:
    """Grow the graph; return one row per report: keyframes, graph ms/kf, retrieval ms/kf, loops."""
    rng = np.random.default_rng(seed)
    graph = PoseGraph(GraphConfig(), use_sim3)
    closer = LoopCloser(LoopClosureConfig(top_k=3, min_score=0.5, recent_window=lap // 2), KeyframeConfig(),
                        None, use_sim3)
    places = rng.normal(size=(lap, 256)).astype(np.float32)
    drift = geometry.make_sim3(Rotation.from_euler("y", 0.05, degrees=True).as_matrix(), [0.001, 0, 0])
    empty = np.zeros((1, 1, 3), np.float32)
    rows, t_graph, t_ret, loops, hits = [], 0.0, 0.0, 0, 0
    sig = graph.sigmas(0.5, 0.05, 0.01)
    for i in range(n_keyframes):
        desc = places[i % lap] + 0.3 * rng.normal(size=256).astype(np.float32)
        kf = Keyframe(id=i, frame_index=i, timestamp=float(i), points=empty, confidence=np.ones((1, 1), np.float32),
                      colors=np.zeros((1, 1, 3), np.uint8), K=np.eye(3), pose=np.eye(4), frontend_pose=np.eye(4),
                      descriptor=desc)
        t0 = time.perf_counter()
        if i == 0:
            graph.add_node(0, _pose(0, lap))
        else:
            odo = geometry.relative_pose(_pose(i - 1, lap), _pose(i, lap)) @ drift
            graph.add_node(i, graph.pose(i - 1) @ odo)
            graph.add_edge(Edge(i - 1, i, odo, sig))
        graph.update()
        t_graph += time.perf_counter() - t0
        t0 = time.perf_counter()
        closer.add(kf)
        found = closer.retrieve(kf, i - closer.cfg.recent_window)
        t_ret += time.perf_counter() - t0
        hits += any(j % lap == i % lap for j, _ in found)
        if i >= lap and i % loop_every == 0:
            t0 = time.perf_counter()
            graph.add_edge(Edge(i - lap, i, np.eye(4), graph.sigmas(1.0, 0.05, 0.02), kind="loop", robust=True))
            graph.update(extra_iterations=2, read_from=i - lap)
            t_graph += time.perf_counter() - t0
            loops += 1
        if (i + 1) % report_every == 0 or i + 1 == n_keyframes:
            n = report_every if (i + 1) % report_every == 0 else (i + 1) % report_every
            rows.append({"keyframes": i + 1, "graph_ms": 1e3 * t_graph / n, "retrieval_ms": 1e3 * t_ret / n,
                         "loops": loops, "retrieval_hit_rate": hits / max(1, i + 1 - lap)})
            t_graph = t_ret = 0.0
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyframes", type=int, default=10000)
    parser.add_argument("--lap", type=int, default=200, help="keyframes per lap of the loop")
    parser.add_argument("--loop-every", type=int, default=10, help="a loop edge every N keyframes after lap 1")
    parser.add_argument("--report-every", type=int, default=1000)
    parser.add_argument("--graph", choices=["sim3", "se3"], default="sim3")
    args = parser.parse_args(argv)
    rows = run(args.keyframes, args.lap, args.loop_every, args.graph == "sim3", args.report_every)
    print(f"{'keyframes':>10} {'graph ms/kf':>12} {'retrieval ms/kf':>16} {'total ms/kf':>12} {'loops':>6}")
    for r in rows:
        print(f"{r['keyframes']:>10} {r['graph_ms']:>12.2f} {r['retrieval_ms']:>16.3f} "
              f"{r['graph_ms'] + r['retrieval_ms']:>12.2f} {r['loops']:>6}")
    last = rows[-1]
    print(f"retrieval found the true place for {100 * last['retrieval_hit_rate']:.0f}% of revisiting keyframes")
    return rows


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
