"""Named evaluation protocols for ``slam bench``: frame selection and scoring fixed as the papers do.

A protocol is a set of ``key=value`` run overrides (applied to every run of the sweep, and fixed: a
user override of the same key is an error) plus a statement of what is scored. In every protocol the
scored trajectory is the run's ``trajectory.tum``: every streamed frame (not only keyframes), after the
final optimisation, associated with the ground truth by time stamp and aligned by Umeyama (evo), as
written by ``slam run`` into ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from slam.errors import ConfigError


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    Attributes:
        name: the ``--protocol`` value.
        overrides: run-config ``key=value`` strings that implement the frame selection / outputs.
        scored: what is scored, in words (written into the tables).
        primary: the metric column the papers report for this protocol.
        source: where the protocol comes from.
    """

    name: str
    overrides: tuple[str, ...]
    scored: str
    primary: str
    source: str


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="default",
            overrides=(),
            scored="all frames of the data as given (trajectory.tum), SE(3) and Sim(3) ATE",
            primary="ate_se3_m",
            source="no preset: the sequence as the dataset loader streams it",
        ),
        Protocol(
            name="tum-dynamics",
            overrides=("dataset.stride=3", "dataset.max_frames=90"),
            scored="first 90 frames at stride 3 (all 90 scored), Sim(3) ATE and RPE",
            primary="ate_sim3_m",
            source="MonST3R (Zhang et al. 2024, arXiv:2410.03825) camera-pose evaluation on TUM-dynamics, "
                   "reused by CUT3R (Wang et al. 2025, arXiv:2501.12387) and TTT3R (arXiv:2509.26645)",
        ),
        Protocol(
            name="tum-fr1",
            overrides=("dataset.stride=2",),
            scored="every 2nd frame, all of them scored (not only keyframes), SE(3) and Sim(3) ATE",
            primary="ate_se3_m",
            source="ATE of the TUM RGB-D benchmark (Sturm et al., IROS 2012); stride 2 as issue 15 states "
                   "for the SLAM papers' fr1 comparisons",
        ),
        Protocol(
            name="kitti-odometry",
            overrides=("output.kitti=true",),
            scored="all frames, Sim(3) and SE(3) ATE, KITTI t_err/r_err over 100-800 m segments",
            primary="ate_sim3_m",
            source="KITTI odometry devkit (Geiger et al., CVPR 2012): t_err %, r_err deg/100 m over "
                   "100..800 m sub-sequences; ATE as in the monocular-SLAM literature",
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; a :class:`ConfigError` naming the known ones otherwise."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{name}' (known: {', '.join(PROTOCOLS)})", "--protocol")
    return PROTOCOLS[name]


def run_overrides(protocol: Protocol, user: list[str]) -> list[str]:
    """Protocol overrides followed by the user's; a user key fixed by the protocol is an error."""
    fixed = {text.partition("=")[0] for text in protocol.overrides}
    for text in user:
        key = text.partition("=")[0].strip()
        if key in fixed:
            raise ConfigError(f"'{key}' is fixed by protocol '{protocol.name}'; use --protocol default to set it",
                              "command line")
    return [*protocol.overrides, *user]
