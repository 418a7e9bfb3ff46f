"""Execution of one benchmark run in its own process, and of a sweep on a local pool or on Ray.

Each run is ``python -m slam.bench.child`` -> ``slam run --data SEQ --out DIR/<sequence>/<frontend>``
in a new process session, so that a crash, an out-of-memory kill or a timeout of one run never stops
the sweep. The parent waits with ``os.wait4`` to get the child's peak resident memory.
Bench bookkeeping (log, child result, row) lives in ``DIR/logs/``, not in the run folder, which holds
exactly what ``slam run`` writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from slam.atomic import write_text_atomic
from slam.bench.tables import row_from_run
from slam.errors import SlamError

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds a run gets to write its partial outputs after SIGINT before it is killed.
INTERRUPT_GRACE_S = 20.0


@dataclass(frozen=True)
class RunSpec:
    """One (sequence, frontend) run of a sweep.

    Attributes:
        sequence: unique sequence name (the data folder's name, suffixed ``_2``, ... on collision).
        frontend: registered frontend name.
        data: sequence path as given.
        out_dir: ``DIR/<sequence>/<frontend>``.
        log_dir: ``DIR/logs``.
        overrides: ``key=value`` strings for ``slam run`` (protocol first, then the user's).
        protocol: protocol name (recorded in the row).
        scored: what is scored, in words (recorded in the row).
        timeout_s: wall-clock limit of the run; None = none.
        max_memory_mb: address-space limit (RLIMIT_AS) of the run's process in MiB; None = none.
    """

    sequence: str
    frontend: str
    data: str
    out_dir: str
    log_dir: str
    overrides: tuple[str, ...] = ()
    protocol: str = "default"
    scored: str = ""
    timeout_s: float | None = None
    max_memory_mb: float | None = None

    @property
    def key(self) -> str:
        return f"{self.sequence}__{self.frontend}"

    def file(self, suffix: str) -> Path:
        return Path(self.log_dir) / f"{self.key}{suffix}"

    def cli_args(self) -> list[str]:
        return ["run", "--data", self.data, "--out", self.out_dir, "--quiet", *self.overrides,
                f"frontend.name={self.frontend}"]


def unique_sequence_names(paths: Iterable[str | Path]) -> list[str]:
    """Data folder names (a video file: its stem), suffixed ``_2``, ``_3`` ... where they collide."""
    names, seen = [], set()
    for path in paths:
        p = Path(path)
        base = (p.stem if p.is_file() else p.resolve().name) or "sequence"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def execute_run(spec: RunSpec, stop: threading.Event | None = None) -> dict | None:
    """Run ``spec`` in a child process and return its table row (also written to ``logs/<key>.row.json``).

    Returns None when ``stop`` was set before the run finished (the child got SIGINT, wrote its partial
    outputs and is not counted). Status: ``ok``; ``failed`` (one-line error); ``oom`` (memory error in the
    child or killed by SIGKILL without a timeout: the kernel's OOM killer); ``timeout``.
    """
    Path(spec.log_dir).mkdir(parents=True, exist_ok=True)
    result_file = spec.file(".child.json")
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "slam.bench.child", str(result_file)]
    if spec.max_memory_mb:
        cmd += ["--max-memory", str(spec.max_memory_mb)]
    cmd += ["--", *spec.cli_args()]
    t0 = time.perf_counter()
    with open(spec.file(".log"), "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=_child_env(), start_new_session=True)
        try:
            status_code, rusage, timed_out, stopped = _wait(proc.pid, spec.timeout_s, stop)
        except KeyboardInterrupt:  # e.g. a cancelled Ray task: let the run write its partial outputs
            _signal_group(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
            raise
        proc.returncode = os.waitstatus_to_exitcode(status_code)  # reaped by os.wait4, tell Popen
    wall = time.perf_counter() - t0
    if stopped:
        return None
    child = {}
    if result_file.is_file():
        try:
            child = json.loads(result_file.read_text())
        except ValueError:
            child = {}
    if timed_out:
        status, error = "timeout", f"no result after {spec.timeout_s:g} s"
    elif child:
        status, error = child.get("status", "failed"), child.get("error", "")
    elif os.WIFSIGNALED(status_code):
        sig = os.WTERMSIG(status_code)
        status = "oom" if sig == signal.SIGKILL else "failed"
        error = f"killed by {signal.Signals(sig).name}" + (" (out of memory?)" if status == "oom" else "")
    else:
        status, error = "failed", f"exit code {os.WEXITSTATUS(status_code)} without a result (see {spec.file('.log')})"
    if status == "interrupted":
        status = "failed"
    row = row_from_run(spec, status=status, error=error, peak_rss_mb=round(rusage.ru_maxrss / 1024.0, 1),
                       peak_gpu_mb=child.get("peak_gpu_mb"), wall_s=round(wall, 2))
    write_text_atomic(spec.file(".row.json"), json.dumps(row, indent=2) + "\n")
    return row


def _wait(pid: int, timeout_s: float | None, stop: threading.Event | None):
    """Wait for ``pid``; kill its session on timeout, SIGINT it (then kill) on ``stop``.

    Returns (wait status, rusage, timed_out, stopped).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    timed_out = stopped = False
    grace_until = None
    while True:
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, rusage, timed_out, stopped
        now = time.monotonic()
        if deadline is not None and now > deadline and not timed_out:
            timed_out = True
            _signal_group(pid, signal.SIGKILL)
        if stop is not None and stop.is_set() and not stopped:
            stopped = True
            _signal_group(pid, signal.SIGINT)
            grace_until = now + INTERRUPT_GRACE_S
        if grace_until is not None and now > grace_until:
            _signal_group(pid, signal.SIGKILL)
            grace_until = None
        time.sleep(0.1)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def ray_remote_run(spec_dict: dict) -> dict:
    """Ray task body: :func:`execute_run` on the worker's machine (the output folder must be shared)."""
    return execute_run(RunSpec(**spec_dict))


@dataclass
class SweepResult:
    rows: list[dict] = field(default_factory=list)
    interrupted: bool = False


def run_local(specs: list[RunSpec], workers: int, on_row: Callable[[dict], None]) -> SweepResult:
    """Run ``specs`` with at most ``workers`` child processes at a time; ``on_row`` per finished run."""
    result = SweepResult()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="bench")
    pending = {pool.submit(execute_run, spec, stop) for spec in specs}
    try:
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                row = fut.result()
                if row is not None:
                    result.rows.append(row)
                    on_row(row)
    except KeyboardInterrupt:
        result.interrupted = True
        stop.set()
        for fut in pending:
            fut.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return result


def require_ray():
    """The ``ray`` module, or a one-line :class:`SlamError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SlamError("Ray is not installed (it is an optional extra: pip install 'ttsa-slam[ray]')",
                        "--ray") from None
    return ray


def run_ray(specs: list[RunSpec], address: str | None, workers: int, on_row: Callable[[dict], None],
            gpus_per_run: float = 0.0) -> SweepResult:
    """Each spec a Ray task (1 CPU, ``gpus_per_run`` GPUs); ``address`` None starts a local Ray runtime
    with ``workers`` CPUs (and the GPUs Ray detects)."""
    ray = require_ray()
    init_kwargs = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **init_kwargs)
    else:
        env = {"PYTHONPATH": _child_env()["PYTHONPATH"], "MPLBACKEND": "Agg"}
        ray.init(num_cpus=max(1, workers), runtime_env={"env_vars": env}, **init_kwargs)
    result = SweepResult()
    task = ray.remote(num_cpus=1, num_gpus=gpus_per_run, max_retries=0)(ray_remote_run)
    refs = {task.remote(asdict(spec)): spec for spec in specs}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for ref in done:
                try:
                    row = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a lost worker/node is one failed row
                    spec = refs[ref]
                    row = row_from_run(spec, status="failed", error=f"Ray task failed: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''}")
                result.rows.append(row)
                on_row(row)
    except KeyboardInterrupt:
        result.interrupted = True
        for ref in pending:
            ray.cancel(ref)
    finally:
        ray.shutdown()
    return result
