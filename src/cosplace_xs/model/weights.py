"""ImageNet weights for a backbone: torchvision's (through torch.hub's cache), a state dict file, or none.

`imagenet` reads the file torchvision's weights API would fetch, at the same place in torch.hub's cache
(`$TORCH_HOME/hub/checkpoints/<name from the weights url>`), so a cached file loads offline. It downloads a
missing file with torch.hub's downloader (atomic: a broken download leaves no file) but logs instead of
printing. Weights that were asked for and cannot be had are a WeightsUnavailableError: never random weights.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from cosplace_xs.errors import WeightsUnavailableError
from cosplace_xs.model.backbones import BackboneSpec
from cosplace_xs.model.state_keys import state_mismatches

log = logging.getLogger(__name__)

# Seconds a download may wait on one connect or read: a firewalled machine fails within this instead of
# waiting out the system's TCP timeout of minutes (a machine without DNS fails at once anyway).
DOWNLOAD_TIMEOUT_S = 30.0
_UNREADABLE = (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError)


def hub_weights_path(spec: BackboneSpec) -> Path:
    """Where torch.hub caches the ImageNet weights of `spec` (what torchvision's weights API reads)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_file


def _remedies(spec: BackboneSpec) -> str:
    if spec.weights is None:  # timm's: a state dict file of the library's model
        return (f"Pass --pretrained PATH with a state dict of timm's model of {spec.name}, or pass --no-pretrained "
                "to start from random weights")
    return (
        f"Either go online so the weights can be downloaded (or copy {spec.weights_file} from "
        f"{spec.weights.url} to {hub_weights_path(spec)}), or pass --pretrained PATH with a state dict of "
        f"torchvision's {spec.name} classification model, or pass --no-pretrained to start from random weights"
    )


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(spec: BackboneSpec, path: Path, progress: bool) -> None:
    log.info("downloading the ImageNet weights of %s from %s to %s", spec.name, spec.weights.url, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            torch.hub.download_url_to_file(spec.weights.url, str(path), progress=progress)
    except (OSError, RuntimeError) as error:
        raise WeightsUnavailableError(
            f"the ImageNet weights of {spec.name} could not be downloaded from {spec.weights.url} ({error}). "
            f"{_remedies(spec)}"
        ) from None


def _read_state_dict(path: Path, what: str, fix: str) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsUnavailableError(f"{path}: cannot be read as {what} ({reason}). {fix}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsUnavailableError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors. {fix}")
    # a plain dict: without the saved module versions, BatchNorm accepts files that predate its batch counter
    return dict(state)


def weights_path(spec: BackboneSpec, pretrained: str) -> Path:
    """The file `pretrained` ("imagenet" or a path) names: for imagenet, the one in torch.hub's cache."""
    return hub_weights_path(spec) if pretrained == "imagenet" else Path(pretrained).expanduser()


def classifier_state_dict(spec: BackboneSpec, pretrained: str, progress: bool = True) -> dict[str, Tensor]:
    """The checked weights of torchvision's classification model: `pretrained` is "imagenet" or a state dict file."""
    if pretrained == "imagenet" and spec.library_weights is not None:
        return spec.library_weights(progress)  # timm: through its own cache, with its own error offline
    path = weights_path(spec, pretrained)
    log.info("%s starts from the weights in %s", spec.name, path)
    if pretrained == "imagenet":
        if not path.is_file():
            _download(spec, path, progress)
        fix = f"The cached file is damaged: delete it so it is downloaded again. {_remedies(spec)}"
        state = _read_state_dict(path, f"the {spec.name} ImageNet weights", fix)
    elif not path.is_file():
        raise WeightsUnavailableError(f"--pretrained {pretrained}: no such file. {_remedies(spec)}")
    else:
        state = _read_state_dict(path, "a state dict", _remedies(spec))
    with torch.device("meta"):  # only the structure is needed: no memory, no random initialisation
        expected = spec.constructor().state_dict()
    # strict, except that files older than BatchNorm's batch counter may lack it
    problems = state_mismatches(state, expected, may_lack="num_batches_tracked")
    if problems:
        raise WeightsUnavailableError(
            f"{path}: is not a state dict of torchvision's {spec.name} classification model ({'; '.join(problems)}). "
            f"{_remedies(spec)}"
        )
    return state


def copy_classifier_weights(backbone: nn.Module, spec: BackboneSpec, state: Mapping[str, Tensor]) -> None:
    """Copy a checked `classifier_state_dict` into a backbone built by `spec.features`."""
    with torch.device("meta"):
        classifier = spec.constructor()
    classifier.load_state_dict(state, assign=True)
    # the same cut as the backbone's, so each torchvision key lands on its `backbone.<index>` key
    backbone.load_state_dict(spec.features(classifier, train_all_layers=True).state_dict())
