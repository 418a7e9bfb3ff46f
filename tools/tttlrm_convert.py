#!/usr/bin/env python
"""Convert an official tttLRM checkpoint (``dl3dv_full.pt`` / ``dl3dv_ar.pt``) to ``.safetensors``.

The ``.pt`` is read with ``torch.load(weights_only=True)`` (no pickled code runs). Only the 412 network tensors
are kept (training-loss networks dropped, other extra keys reported); the architecture goes into the metadata,
so ``mapping.tttlrm.load_model`` needs no YAML beside the converted file.

Usage::

    python tools/tttlrm_convert.py dl3dv_ar.pt                       # -> dl3dv_ar.safetensors
    python tools/tttlrm_convert.py dl3dv_full.pt -o weights/full.safetensors --config dl3dv_full.yaml

Exit codes: 0 on success, 2 on a user error (missing / unsafe / mismatched file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="official .pt checkpoint")
    parser.add_argument("-o", "--output", type=Path, default=None, help="output .safetensors (default: beside)")
    parser.add_argument("--config", type=Path, default=None,
                        help="official YAML (default: <checkpoint>.yaml beside it, else the released architecture)")
    args = parser.parse_args(argv)
    from mapping.tttlrm import convert_to_safetensors
    from slam.errors import SlamError

    output = args.output or args.checkpoint.with_suffix(".safetensors")
    if output.suffix != ".safetensors" or output.resolve() == args.checkpoint.resolve():
        print(f"error: {output}: output must be a different file ending in .safetensors", file=sys.stderr)
        return 2
    try:
        path = convert_to_safetensors(args.checkpoint, output, config=args.config)
    except (SlamError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    from slam.entry import tool_main

    sys.exit(tool_main(main))
