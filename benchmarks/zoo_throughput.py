"""Train and inference images/s of each backbone added beside the paper's, at 224 px: model_throughput's step.

Usage: python benchmarks/zoo_throughput.py [--small] [--variants fp32,channels_last_bf16] [--threads 2]
           [--device auto]

Runs model_throughput.py over the registry's EfficientNets, ConvNeXts and DINOv2 ViTs (and ResNet-18 as the
reference) at 224 px, each at the batch its FLOPs allow (model_throughput scales ResNet-18's 32 down), for the
cost column of the README's backbone table. `--small`: one step of DINOv2 ViT-S/14 at 32 px
(DINOv2 sees 28 px), for the smoke test. The loss adds no measurable cost (a (B, D) x (D, classes) product).
"""

from __future__ import annotations

import argparse
import sys

import model_throughput

from cosplace_xs.model.backbones import BACKBONES

PAPER = ("resnet50", "resnet101", "resnet152", "vgg16")
ZOO = ",".join(name for name in BACKBONES if name not in PAPER)  # resnet18 first: the reference
SMALL = "dinov2_vits14"  # the new code path (patch tokens as a map); the CNNs are torchvision's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="one step of DINOv2 ViT-S/14 at 32 px")
    parser.add_argument("--variants", default="fp32")
    known, rest = parser.parse_known_args()
    if known.small:
        settings = ["--backbones", SMALL, "--sizes", "32", "--batch", "2", "--steps", "1", "--ceiling-sizes", "64"]
    else:
        settings = ["--backbones", ZOO, "--sizes", "224"]
    sys.argv = [sys.argv[0], *settings, "--modes", "train,infer", "--variants", known.variants, *rest]
    model_throughput.main()


if __name__ == "__main__":
    main()
