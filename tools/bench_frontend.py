#!/usr/bin/env python
"""Per-frame latency and peak memory of the CUT3R-family update rules (cut3r, ttt3r, ttsa3r), or of
STream3R's streaming modes (``--frontend stream3r``: causal and window).

The network has random weights (timings do not depend on their values). One streaming session per rule
runs on the same sequence of random frames; the rules are *interleaved frame by frame* (with the order
rotated every frame) so that load changes on a shared machine affect all rules alike. The first
``--warmup`` frames are excluded. A frame's time is one ``session.step`` (encoder, decoders, update rule,
heads, copying the outputs to the CPU); preprocessing is not included. Besides wall time, the process
CPU time of each step (``time.process_time``, all threads) is reported: on a machine shared with other
jobs it is far less disturbed by waiting for a core than wall time, so its ratios are the better
estimate of the rules' relative cost on CPU.

Sizes: ``tiny`` = the fixture-like tiny DPT config (64x48 input), ``224`` = the released 224-linear
architecture (224x224 input), ``512`` = the released 512-DPT architecture (512x384 input).

Peak memory per rule:
* CUDA: ``torch.cuda.max_memory_allocated`` over that rule's steps (peak stats reset before each step);
  ``peak_extra_mb`` is that peak minus the memory allocated just before the step.
* CPU: the process's resident-set high-water mark (``VmHWM`` in ``/proc/self/status``), reset before every
  step by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0); ``peak_mem_mb`` is the whole
  process (weights included) and ``peak_extra_mb`` the rise over the RSS just before the step. Where the
  reset is not possible, ``resource.getrusage().ru_maxrss`` is used: then the figure is process-wide and
  not per rule (reported as ``"mem_method": "ru_maxrss"``).

Memory over a long stream: ``mem_series_mb`` holds each timed frame's peak, and ``mem_drift_pct`` the
spread ``(max - min) / min`` of those peaks from frame ``--drift-from`` on (constant memory: close to 0).

Precision and fast paths: ``--autocast bf16`` runs encoder and decoders in bfloat16 (CPU or CUDA; heads stay
float32); ``--compile`` runs the per-view step through ``torch.compile`` (see ``kernels/compiled.py``).

OpenMP threads: unless the environment sets ``OMP_WAIT_POLICY``, this tool sets it to ``PASSIVE`` before
torch loads (spinning worker threads make a step several times slower when another job holds a core);
the policy in effect is recorded as ``omp_wait_policy``.

STream3R (``--frontend stream3r``): sizes ``tiny`` (the public fixture architecture, 42x70 input) and
``full`` (the released architecture, 392x518 input, i.e. a 4:3 image after the official preprocessing).
The weights are random (normal, std 0.02). Modes ``causal`` and ``window`` (window 5) are interleaved frame
by frame; the JSON also holds the per-frame lists ``ms`` and ``peak_mb`` (vs frame index: causal grows with
its KV cache, window stays flat). ``--official-layout DIR`` first writes the random model in the official
layout (``config.json`` + ``model.safetensors``) and benchmarks the network loaded back strictly from it.

Example::

    python tools/bench_frontend.py --size 224 --frames 6 --device cpu --json bench_224.json
    python tools/bench_frontend.py --size 512 --frames 1000 --device cuda --autocast bf16 --rules ttsa3r
    python tools/bench_frontend.py --frontend stream3r --size full --frames 3 --warmup 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads its OpenMP runtime
import torch  # noqa: E402

RULES = ("cut3r", "ttt3r", "ttsa3r")
SIZES = ("tiny", "224", "512")
STREAM3R_MODES = ("causal", "window")
STREAM3R_SIZES = ("tiny", "full")


def model_config(size: str):
    """(network config, (H, W) input size) for a benchmark size name."""
    from frontends.cut3r.config import CUT3R_224_LINEAR, CUT3R_512_DPT

    if size == "tiny":  # the shape of shared/fixtures/cut3r/model_dpt
        cfg = replace(CUT3R_512_DPT, state_size=16, img_size=(64, 64), enc_embed_dim=128, enc_depth=2,
                      enc_num_heads=4, dec_embed_dim=64, dec_depth=4, dec_num_heads=4)
        return cfg, (48, 64)
    if size == "224":
        return CUT3R_224_LINEAR, (224, 224)
    if size == "512":
        return CUT3R_512_DPT, (384, 512)
    raise ValueError(f"unknown size {size!r} (use one of {', '.join(SIZES)})")


class MemoryProbe:
    """Peak memory of one step: CUDA allocator peak, or the CPU RSS high-water mark (see module doc)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.method = "cuda_max_memory_allocated" if self.cuda else ("vmhwm" if self._can_reset_hwm() else "ru_maxrss")
        self._before = 0.0

    @staticmethod
    def _status_mb(field: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB -> MiB
        except OSError:
            return None
        return None

    def _can_reset_hwm(self) -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return self._status_mb("VmHWM") is not None

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._before = torch.cuda.memory_allocated() / 2**20
        elif self.method == "vmhwm":
            Path("/proc/self/clear_refs").write_text("5")
            self._before = self._status_mb("VmRSS") or 0.0
        else:
            self._before = 0.0

    def stop(self) -> tuple[float, float]:
        """(peak MiB, peak minus the level before the step in MiB)."""
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
        elif self.method == "vmhwm":
            peak = self._status_mb("VmHWM") or 0.0
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
        return peak, peak - self._before


AUTOCAST = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def run(size: str, frames: int, device: str, warmup: int = 1, seed: int = 0, rules: tuple[str, ...] = RULES,
        autocast: str = "none", compile_step: bool = False, drift_from: int = 10) -> dict:
    """Benchmark the given rules; returns ``{rule: {"ms_per_frame", "peak_mem_mb", ...}}``."""
    from frontends.cut3r.model.net import Cut3rNet

    if frames <= warmup:
        raise ValueError(f"--frames ({frames}) must be larger than --warmup ({warmup})")
    dev = torch.device(device)
    cfg, (h, w) = model_config(size)
    torch.manual_seed(seed)
    net = Cut3rNet(cfg).to(dev).eval()
    # a few distinct frames, reused cyclically: long streams need no per-frame allocation of inputs
    images = [torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed + i)).mul(2).sub(1).to(dev)
              for i in range(min(frames, 8))]
    sessions = {rule: net.session(update=rule, autocast_dtype=AUTOCAST[autocast], compile_step=compile_step)
                for rule in rules}
    probe = MemoryProbe(dev)
    times: dict[str, list[float]] = {rule: [] for rule in rules}
    cpu_times: dict[str, list[float]] = {rule: [] for rule in rules}
    peaks: dict[str, list[tuple[float, float]]] = {rule: [] for rule in rules}
    for i in range(frames):
        img = images[i % len(images)]
        order = rules[i % len(rules):] + rules[: i % len(rules)]
        for rule in order:
            probe.start()
            start, cpu_start = time.perf_counter(), time.process_time()
            sessions[rule].step(img)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            elapsed = (time.perf_counter() - start) * 1e3
            cpu_elapsed = (time.process_time() - cpu_start) * 1e3
            peak = probe.stop()
            if i >= warmup:
                times[rule].append(elapsed)
                cpu_times[rule].append(cpu_elapsed)
                peaks[rule].append(peak)
    results = {}
    for rule in rules:
        series = [p for p, _ in peaks[rule]]
        tail = series[max(drift_from - warmup, 0):] or series
        results[rule] = {
            "ms_per_frame": statistics.median(times[rule]),
            "ms_mean": statistics.fmean(times[rule]),
            "ms_min": min(times[rule]),
            "cpu_ms_per_frame": statistics.median(cpu_times[rule]),
            "peak_mem_mb": max(p for p, _ in peaks[rule]),
            "peak_extra_mb": max(e for _, e in peaks[rule]),
            "frames_timed": len(times[rule]),
            "size": size, "input_hw": [h, w], "device": device, "threads": torch.get_num_threads(),
            "mem_method": probe.method, "autocast": autocast, "compile": compile_step,
            "frames_per_second": 1e3 / statistics.median(times[rule]),
            "mem_series_mb": [round(p, 2) for p in series],
            "mem_drift_pct": 100.0 * (max(tail) - min(tail)) / max(min(tail), 1e-9),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        }
    base = results.get("cut3r", results[rules[0]])
    for rule in rules:
        results[rule]["ratio_vs_cut3r"] = results[rule]["ms_per_frame"] / base["ms_per_frame"]
        results[rule]["ratio_min_vs_cut3r"] = results[rule]["ms_min"] / base["ms_min"]
        results[rule]["cpu_ratio_vs_cut3r"] = results[rule]["cpu_ms_per_frame"] / base["cpu_ms_per_frame"]
    return results


def stream3r_config(size: str):
    """(STream3R network config, (H, W) input size) for a benchmark size name."""
    from frontends.stream3r.config import Stream3rNetConfig

    if size == "tiny":  # shared/fixtures/stream3r/model
        cfg = Stream3rNetConfig(img_size=70, embed_dim=64, patch_embed_depth=2, patch_embed_num_heads=4,
                                aggregator_depth=6, aggregator_num_heads=4, camera_trunk_depth=2, camera_num_heads=4,
                                dpt_features=32, dpt_out_channels=(16, 32, 64, 64),
                                dpt_intermediate_layer_idx=(1, 3, 4, 5))
        return cfg, (42, 70)
    if size == "full":
        return Stream3rNetConfig(), (392, 518)
    raise ValueError(f"unknown STream3R size {size!r} (use one of {', '.join(STREAM3R_SIZES)})")


def random_stream3r(size: str, device: torch.device, seed: int = 0, official_layout: Path | None = None):
    """Random-weight STream3R (std 0.02, LayerNorm weights 1); optionally round-tripped through the official layout."""
    from frontends.stream3r.checkpoint import build_model, load_model, save_model

    cfg, hw = stream3r_config(size)
    net = build_model(cfg, None, device="cpu" if official_layout else device)
    gen = torch.Generator(device=net.aggregator.camera_token.device).manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            for name, p in module.named_parameters(recurse=False):
                if isinstance(module, torch.nn.LayerNorm):
                    p.fill_(1.0 if name == "weight" else 0.0)
                else:
                    p.normal_(0.0, 0.02, generator=gen)
    if official_layout is not None:
        save_model(net, official_layout)
        del net
        net = load_model(official_layout, device=device)
    return net, hw


def run_stream3r(size: str, frames: int, device: str, warmup: int = 1, seed: int = 0,
                 official_layout: Path | None = None) -> dict:
    """Benchmark STream3R causal and window streaming; returns ``{mode: figures}`` (see module doc)."""
    if frames <= warmup:
        raise ValueError(f"--frames ({frames}) must be larger than --warmup ({warmup})")
    dev = torch.device(device)
    net, (h, w) = random_stream3r(size, dev, seed, official_layout)
    images = [torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed + i)).to(dev) for i in range(frames)]
    sessions = {mode: net.session(mode=mode, window=5) for mode in STREAM3R_MODES}
    probe = MemoryProbe(dev)
    per = {mode: {"ms": [], "cpu_ms": [], "peak_mb": [], "extra_mb": []} for mode in STREAM3R_MODES}
    for i, img in enumerate(images):
        for mode in (STREAM3R_MODES if i % 2 == 0 else STREAM3R_MODES[::-1]):
            probe.start()
            start, cpu_start = time.perf_counter(), time.process_time()
            out = sessions[mode].step(img)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            rec = per[mode]
            rec["ms"].append((time.perf_counter() - start) * 1e3)
            rec["cpu_ms"].append((time.process_time() - cpu_start) * 1e3)
            peak, extra = probe.stop()
            rec["peak_mb"].append(peak)
            rec["extra_mb"].append(extra)
            del out
    results = {}
    for mode, rec in per.items():
        timed = rec["ms"][warmup:]
        results[mode] = {
            "ms_per_frame": statistics.median(timed), "ms_mean": statistics.fmean(timed), "ms_min": min(timed),
            "cpu_ms_per_frame": statistics.median(rec["cpu_ms"][warmup:]),
            "peak_mem_mb": max(rec["peak_mb"][warmup:]), "peak_extra_mb": max(rec["extra_mb"][warmup:]),
            "frames_timed": len(timed), "ms": rec["ms"], "peak_mb": rec["peak_mb"],
            "size": size, "input_hw": [h, w], "device": device, "threads": torch.get_num_threads(),
            "mem_method": probe.method, "official_layout": official_layout is not None,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        }
    return results


def format_table(results: dict) -> str:
    if set(results) == set(STREAM3R_MODES):
        first = results["causal"]
        lines = [f"stream3r size={first['size']} input={first['input_hw'][0]}x{first['input_hw'][1]} "
                 f"device={first['device']} threads={first['threads']} frames timed={first['frames_timed']} "
                 f"memory={first['mem_method']}",
                 f"{'mode':<8} {'ms/frame (median)':>18} {'min':>9} {'cpu ms':>9} {'peak MB':>9} {'extra MB':>9}"]
        for mode in STREAM3R_MODES:
            r = results[mode]
            lines.append(f"{mode:<8} {r['ms_per_frame']:>18.1f} {r['ms_min']:>9.1f} {r['cpu_ms_per_frame']:>9.1f} "
                         f"{r['peak_mem_mb']:>9.1f} {r['peak_extra_mb']:>9.1f}")
        return "\n".join(lines)
    first = next(iter(results.values()))
    lines = [f"size={first['size']} input={first['input_hw'][0]}x{first['input_hw'][1]} device={first['device']} "
             f"threads={first['threads']} frames timed={first['frames_timed']} memory={first['mem_method']} "
             f"autocast={first['autocast']} compile={first['compile']} OMP_WAIT_POLICY={first['omp_wait_policy']}",
             f"{'rule':<8} {'ms/frame (median)':>18} {'mean':>9} {'min':>9} {'peak MB':>9} {'extra MB':>9} "
             f"{'x cut3r (median)':>17} {'x cut3r (min)':>14} {'cpu ms':>9} {'x cut3r (cpu)':>14} {'mem drift %':>12}"]
    for rule in results:
        r = results[rule]
        lines.append(f"{rule:<8} {r['ms_per_frame']:>18.1f} {r['ms_mean']:>9.1f} {r['ms_min']:>9.1f} "
                     f"{r['peak_mem_mb']:>9.1f} {r['peak_extra_mb']:>9.1f} {r['ratio_vs_cut3r']:>17.3f} "
                     f"{r['ratio_min_vs_cut3r']:>14.3f} {r['cpu_ms_per_frame']:>9.1f} {r['cpu_ratio_vs_cut3r']:>14.3f} "
                     f"{r['mem_drift_pct']:>12.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frontend", choices=("cut3r", "stream3r"), default="cut3r")
    parser.add_argument("--size", choices=sorted(set(SIZES) | set(STREAM3R_SIZES)), default="tiny")
    parser.add_argument("--frames", type=int, default=6, help="frames per rule, warm-up included")
    parser.add_argument("--warmup", type=int, default=1, help="leading frames excluded from the figures")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--official-layout", type=Path, default=None,
                        help="stream3r: write the random model to this folder and benchmark it loaded back")
    parser.add_argument("--rules", default=",".join(RULES), help="cut3r: comma-separated update rules to run")
    parser.add_argument("--autocast", choices=sorted(AUTOCAST), default="none", help="cut3r: mixed precision")
    parser.add_argument("--compile", action="store_true", help="cut3r: torch.compile the per-view step")
    parser.add_argument("--drift-from", type=int, default=10, help="first frame of the memory-drift figure")
    args = parser.parse_args(argv)
    valid = STREAM3R_SIZES if args.frontend == "stream3r" else SIZES
    if args.size not in valid:
        print(f"error: --size {args.size} is not a {args.frontend} size (use one of {', '.join(valid)})",
              file=sys.stderr)
        return 2
    rules = tuple(r for r in args.rules.split(",") if r)
    unknown = sorted(set(rules) - set(RULES))
    if unknown or not rules:
        print(f"error: --rules: unknown rule(s) {', '.join(unknown) or '(none given)'} (use {', '.join(RULES)})",
              file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda requested but CUDA is not available", file=sys.stderr)
        return 2
    if args.frames <= args.warmup:
        print(f"error: --frames ({args.frames}) must be larger than --warmup ({args.warmup})", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.frontend == "stream3r":
        results = run_stream3r(args.size, args.frames, args.device, args.warmup, official_layout=args.official_layout)
    else:
        results = run(args.size, args.frames, args.device, args.warmup, rules=rules, autocast=args.autocast,
                      compile_step=args.compile, drift_from=args.drift_from)
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
