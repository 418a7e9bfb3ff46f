#!/usr/bin/env python
"""Convert an official CUT3R/TTT3R/TTSA3R ``.pth`` checkpoint to ``.safetensors`` (+ ``.config.txt``).

The ``.pth`` is read without executing pickled code (see ``frontends/cut3r/safe_pth.py``). The output holds
only the model weights (float32 unless ``--dtype`` says otherwise), with the model string in the metadata
entry ``config`` and, unless ``--no-sidecar``, also in ``<name>.config.txt`` next to it. Optimizer state
and training arguments are dropped.

Usage::

    python tools/convert_checkpoint.py cut3r_512_dpt_4_64.pth                 # -> cut3r_512_dpt_4_64.safetensors
    python tools/convert_checkpoint.py in.pth -o out/model.safetensors --verify

Exit codes: 0 on success, 2 on a user error (missing/corrupt/unsafe file, bad model string, mismatch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="official .pth checkpoint")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="output .safetensors (default: next to the input, same name)")
    parser.add_argument("--config", default=None,
                        help="model string, or a file holding it, for checkpoints without 'args'")
    parser.add_argument("--dtype", default="float32", choices=sorted(_DTYPES),
                        help="dtype of the stored floating-point weights (default float32)")
    parser.add_argument("--no-sidecar", action="store_true", help="do not write <name>.config.txt")
    parser.add_argument("--verify", action="store_true",
                        help="build the network and check that the weights load strictly")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    return parser.parse_args(argv)


def convert(args: argparse.Namespace) -> Path:
    """Run the conversion; raises SlamError subclasses for user errors. Returns the output path."""
    import torch

    from frontends.cut3r.checkpoint import build_model, read_checkpoint, read_pth, write_safetensors
    from slam.errors import CheckpointError

    output = args.output or args.checkpoint.with_suffix(".safetensors")
    if output.suffix != ".safetensors":
        raise CheckpointError("output file must end in .safetensors", output)
    if output.resolve() == args.checkpoint.resolve():
        raise CheckpointError("output would overwrite the input", output)
    if output.exists() and not args.force:
        raise CheckpointError("output exists (use --force to overwrite)", output)
    existing = next(p for p in output.absolute().parents if p.exists())
    if not existing.is_dir():
        raise CheckpointError(f"cannot write {output}: {existing} is a file, not a folder", existing)
    config = args.config
    if config is not None and Path(config).is_file():
        try:
            config = Path(config).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise CheckpointError("--config file is not text (expected a model string)", config) from None
    if not args.checkpoint.is_file():
        raise CheckpointError("checkpoint file not found", args.checkpoint)

    checkpoint = read_pth(args.checkpoint, config)
    dtype = getattr(torch, _DTYPES[args.dtype])
    state_dict = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in checkpoint.state_dict.items()}
    if args.verify:
        build_model(checkpoint)  # raises CheckpointError listing unknown/missing keys and wrong shapes
    write_safetensors(output, state_dict, checkpoint.model_string, sidecar=not args.no_sidecar,
                      extra_metadata={"source": args.checkpoint.name})
    if args.verify:
        reread = read_checkpoint(output)
        if reread.config != checkpoint.config or set(reread.state_dict) != set(checkpoint.state_dict):
            raise CheckpointError("written file does not read back identically", output)
    return output


def _convert_and_report(argv: list[str]) -> int:
    output = convert(parse_args(argv))
    print(f"wrote {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Convert; user errors end in one ``error:`` line and exit code 2 (:func:`slam.entry.tool_main`)."""
    from slam.entry import tool_main

    return tool_main(_convert_and_report, argv)


if __name__ == "__main__":
    sys.exit(main())
