"""Opening a Rerun recording in the configured mode, with fallbacks, and watching that its viewer stays up.

The run must never wait on a viewer: a missing viewer binary, a missing display, an unreachable URL or a
port in use are detected up front (a TCP probe takes milliseconds, while Rerun's own gRPC client waits
seconds and then buffers everything in memory), and the sink falls back to ``viz.fallback`` ('save' to the
``.rrd`` file, or 'off'). A viewer closed in the middle of a run is noticed by :class:`ViewerWatchdog`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import rerun as rr
import rerun.blueprint as rrb

from mapping.config import VizConfig

log = logging.getLogger(__name__)


@dataclass
class Recording:
    """An open recording stream.

    Attributes:
        stream: the dedicated (non-global) recording stream.
        mode: mode actually in use ('spawn', 'connect', 'serve', 'save'), after any fallback.
        target: where the data goes: file path or viewer/server URL.
        watch: ``(host, port)`` of a viewer to watch ('spawn', 'connect'), else None.
    """

    stream: rr.RecordingStream
    mode: str
    target: str
    watch: tuple[str, int] | None = None


def rrd_path(cfg: VizConfig, out_dir: str | Path) -> Path:
    """The ``.rrd`` file for 'save' mode and for the fallback: ``viz.file`` or ``<out>/run.rrd``."""
    return Path(cfg.file) if cfg.file else Path(out_dir) / "run.rrd"


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` can be opened within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def url_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of a viewer URL such as ``rerun+http://127.0.0.1:9876/proxy`` (port 9876 if absent)."""
    parsed = urlparse(url.replace("rerun+", "", 1))
    return parsed.hostname or "127.0.0.1", parsed.port or 9876


def viewer_executable() -> str | None:
    """Path of the ``rerun`` viewer executable (on PATH or next to this Python), or None."""
    found = shutil.which("rerun")
    if found:
        return found
    sibling = Path(sys.executable).with_name("rerun")
    return str(sibling) if sibling.is_file() and os.access(sibling, os.X_OK) else None


def has_display() -> bool:
    """False on Linux without X11/Wayland (a spawned native viewer would fail after seconds)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("WAYLAND_SOCKET"))


def open_recording(cfg: VizConfig, out_dir: str | Path, blueprint: rrb.Blueprint | None) -> Recording | None:
    """Open a recording stream for ``cfg.mode``; None when the mode is 'off' or nothing could be opened.

    'spawn' and 'connect' fall back to ``cfg.fallback`` when the viewer cannot be started or reached,
    with a warning naming the reason; 'serve' falls back the same way when its port cannot be bound.
    """
    if cfg.mode == "off":
        return None
    stream = rr.RecordingStream(cfg.application_id)
    problem = None
    try:
        if cfg.mode == "save":
            return _save(stream, cfg, out_dir, blueprint)
        if cfg.mode == "spawn":
            rec, problem = _spawn(stream, cfg, blueprint)
        elif cfg.mode == "connect":
            rec, problem = _connect(stream, cfg, blueprint)
        else:
            rec, problem = _serve(stream, cfg, blueprint)
        if rec is not None:
            return rec
    except Exception as exc:  # noqa: BLE001 - a viewer problem must not stop the run
        problem = f"{type(exc).__name__}: {exc}"
    if cfg.fallback == "save":
        rec = _save(stream, cfg, out_dir, blueprint)
        log.warning("viz.mode=%s: %s; saving the recording to %s instead (open it with `rerun %s`)",
                    cfg.mode, problem, rec.target, rec.target)
        return rec
    log.warning("viz.mode=%s: %s; live viewing is off for this run", cfg.mode, problem)
    return None


def _save(stream: rr.RecordingStream, cfg: VizConfig, out_dir: str | Path, bp) -> Recording:
    path = rrd_path(cfg, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream.save(path, default_blueprint=bp)
    return Recording(stream, "save", str(path))


def _spawn(stream: rr.RecordingStream, cfg: VizConfig, bp) -> tuple[Recording | None, str | None]:
    exe = viewer_executable()
    if exe is None:
        return None, "no `rerun` viewer executable found"
    if not has_display():
        return None, "no display (DISPLAY / WAYLAND_DISPLAY unset) for a native viewer"
    host = "127.0.0.1"
    if not reachable(host, cfg.port):  # a viewer already listening on the port is reused
        rr.spawn(port=cfg.port, connect=False, executable_path=exe, hide_welcome_screen=True, recording=stream)
        if not reachable(host, cfg.port, timeout=1.0):
            return None, f"the spawned viewer is not listening on port {cfg.port}"
    url = f"rerun+http://{host}:{cfg.port}/proxy"
    stream.connect_grpc(url, default_blueprint=bp)
    log.info("Rerun viewer on %s", url)
    return Recording(stream, "spawn", url, (host, cfg.port)), None


def _connect(stream: rr.RecordingStream, cfg: VizConfig, bp) -> tuple[Recording | None, str | None]:
    host, port = url_address(cfg.url)
    if not reachable(host, port, timeout=1.0):
        return None, f"no viewer reachable at {cfg.url} (start one with `rerun`)"
    stream.connect_grpc(cfg.url, default_blueprint=bp)
    return Recording(stream, "connect", cfg.url, (host, port)), None


def _serve(stream: rr.RecordingStream, cfg: VizConfig, bp) -> tuple[Recording | None, str | None]:
    if reachable("127.0.0.1", cfg.port):
        return None, f"port {cfg.port} is already in use (set viz.port)"
    url = stream.serve_grpc(grpc_port=cfg.port, default_blueprint=bp, server_memory_limit=cfg.server_memory_limit)
    log.warning("Rerun: serving on %s -- watch with `rerun --connect %s`", url, url)
    if cfg.web_port is not None:
        rr.serve_web_viewer(web_port=cfg.web_port, open_browser=False, connect_to=url)
        log.warning("Rerun web viewer on http://localhost:%d", cfg.web_port)
    return Recording(stream, "serve", url), None


class ViewerWatchdog:
    """Background thread that probes a viewer's TCP port every ``period`` seconds.

    ``lost`` is set after two failed probes in a row; the sink then stops logging (otherwise Rerun's client
    would keep every later message in memory while it retries).
    """

    def __init__(self, address: tuple[str, int], period: float):
        self.address = address
        self.period = period
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rerun-viewer-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.period):
            failures = 0 if reachable(*self.address, timeout=min(1.0, self.period)) else failures + 1
            if failures >= 2:
                self.lost.set()
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
