"""The CosPlace network: backbone -> L2Norm -> GeM -> Flatten -> Linear(C, D) -> L2Norm, a descriptor of size D."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import CheckpointError
from cosplace_xs.model.backbones import backbone_spec
from cosplace_xs.model.layers import GeM, L2Norm
from cosplace_xs.model.state_keys import state_mismatches
from cosplace_xs.model.weights import classifier_state_dict, copy_classifier_weights
from cosplace_xs.options import flag_of


class GeoLocalizationNet(nn.Module):
    """CosPlace's GeoLocalizationNet with a randomly initialised backbone; any input of at least 32 x 32 pixels."""

    def __init__(self, backbone: str, fc_output_dim: int, train_all_layers: bool = False) -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        self.backbone_name = backbone
        self.fc_output_dim = fc_output_dim
        self.backbone = spec.features(spec.constructor(), train_all_layers)
        self.aggregation = nn.Sequential(
            L2Norm(dim=1),
            GeM(),
            nn.Flatten(),
            nn.Linear(spec.channels, fc_output_dim),
            L2Norm(dim=1),
        )

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> (B, D) unit-norm descriptors."""
        return self.aggregation(self.backbone(images))


def build_model(config: ModelConfig, progress: bool = True) -> GeoLocalizationNet:
    """The network of `config`, its backbone starting from the weights `config.pretrained` names."""
    spec = backbone_spec(config.backbone)
    # weights first: no network or a bad file fails before the random initialisation (seconds for VGG16)
    state = None if config.pretrained == "none" else classifier_state_dict(spec, config.pretrained, progress)
    model = GeoLocalizationNet(config.backbone, config.fc_output_dim, config.train_all_layers)
    if state is not None:
        copy_classifier_weights(model.backbone, spec, state)
    return model


def load_model_state(model: GeoLocalizationNet, state_dict: Mapping[str, Any], source: str) -> None:
    """Load saved weights; ones of another backbone or descriptor size are a CheckpointError naming `source`."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source}: its model weights are a {type(state_dict).__name__}, not a state dict")
    problems = state_mismatches(state_dict, model.state_dict())
    if problems:
        raise CheckpointError(
            f"{source}: its weights do not fit a {model.backbone_name} model with descriptor size "
            f"D={model.fc_output_dim} ({'; '.join(problems)}); it was trained with another "
            f"{flag_of(ModelConfig, 'backbone')} or {flag_of(ModelConfig, 'fc_output_dim')}: build the model with the "
            "options of its run"
        )
    model.load_state_dict(state_dict)
