"""torch.hub entry points of cosplace-xs: `torch.hub.load(REPO, "cosplace_xs", checkpoint=PATH)`.

REPO is this repository (a clone with source="local", or owner/name on GitHub). The package is imported from
src/ when it is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# what torch.hub checks before loading: the packages cosplace_xs imports to build and load a model
dependencies = ["torch", "torchvision", "numpy", "yaml", "PIL", "utm"]

if importlib.util.find_spec("cosplace_xs") is None:  # a plain clone, as torch.hub fetches it: not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))


def cosplace_xs(checkpoint: str | None = None, weights: str | None = None, device: str = "cpu"):
    """A ready model in eval mode: (B, 3, H, W) ImageNet-normalised images -> (B, D) unit-norm descriptors.

    checkpoint: a cosplace-xs checkpoint file or run folder (its best.pt, else last.pt).
    weights: a state dict of the official CosPlace or EigenPlaces network (e.g. ResNet18_512_cosplace.pth).
    device: where the model runs, e.g. "cpu" or "cuda".
    """
    import torch

    from cosplace_xs.errors import ConfigError
    from cosplace_xs.evaluation.model_loading import read_published_model, read_trained_model

    if (checkpoint is None) == (weights is None):
        raise ConfigError("cosplace_xs(): give checkpoint=PATH (a cosplace-xs checkpoint or run folder) or "
                          "weights=FILE (an official CosPlace or EigenPlaces state dict), one of them")
    model, _ = read_trained_model(checkpoint) if weights is None else read_published_model(weights)
    return model.to(torch.device(device)).eval()
