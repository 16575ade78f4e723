"""`cosplace-xs export`: a checkpoint or an official state dict as an ONNX or TorchScript file.

The file takes (B, 3, H, W) ImageNet-normalised images of any batch and any size of at least 32 x 32 pixels
and gives (B, D) unit-norm descriptors. After writing, it is run (onnxruntime, torch.jit.load) on random images
of two sizes and its largest difference from the model in torch is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosplace_xs.cli.inference_options import add_model_arguments, model_file, read_model

FORMATS = ("onnx", "torchscript")  # evaluation.export.FORMATS, here so that --help needs no torch


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write a model as ONNX or TorchScript (any batch, any image size)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, metavar="OUT", help="the file to write (replaced in one step)")
    add_model_arguments(parser)
    parser.add_argument("--format", required=True, choices=FORMATS, help="onnx or torchscript")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.evaluation.export import CHECK_SIZES, export_model, largest_difference
    from cosplace_xs.training.run_files import require_writable

    source = model_file(args)
    require_writable(args.out.parent, "OUT's folder")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model, config = read_model(args)
    export_model(model, args.out, args.format)
    difference = largest_difference(model, args.out, args.format)
    sizes = " and ".join(f"{height}x{width}" for height, width in CHECK_SIZES)
    dim = config.model.pca_dim or config.model.fc_output_dim  # a PCA folded into the model gives its K
    print(f"{args.out}: {args.format}, {config.model.backbone} with D={dim} from {source}; "
          f"largest difference from torch on images of {sizes}: {difference:.1e}")
    return 0

