"""The CosPlace network: backbone -> aggregation head -> a unit-norm descriptor of size D.

The default head is the paper's, L2Norm -> GeM -> Flatten -> Linear(C, D) -> L2Norm; `--aggregation` picks
another from model/aggregators.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import CheckpointError
from cosplace_xs.model.aggregators import aggregator_spec, build_head
from cosplace_xs.model.backbones import backbone_spec
from cosplace_xs.model.state_keys import state_mismatches
from cosplace_xs.model.weights import classifier_state_dict, copy_classifier_weights
from cosplace_xs.options import flag_of


class GeoLocalizationNet(nn.Module):
    """CosPlace's GeoLocalizationNet with a randomly initialised backbone; any input of at least 32 x 32 pixels."""

    def __init__(self, backbone: str, fc_output_dim: int, train_all_layers: bool = False,
                 aggregation: str = "gem") -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        self.backbone_name = backbone
        self.fc_output_dim = fc_output_dim
        self.aggregation_name = aggregation
        # a ViT backbone gives (patch map, CLS token); only heads that take tokens see both
        self.takes_tokens = aggregator_spec(aggregation).takes_tokens
        self.backbone = spec.features(spec.constructor(), train_all_layers)
        self.aggregation = build_head(aggregation, backbone, spec.channels, fc_output_dim,
                                      gives_tokens=spec.gives_tokens)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> (B, D) unit-norm descriptors."""
        features = self.backbone(images)
        if isinstance(features, tuple) and not self.takes_tokens:
            features = features[0]
        return self.aggregation(features)


def build_model(config: ModelConfig, progress: bool = True) -> GeoLocalizationNet:
    """The network of `config`, its backbone starting from the weights `config.pretrained` names."""
    spec = backbone_spec(config.backbone)
    # weights first: no network or a bad file fails before the random initialisation (seconds for VGG16)
    state = None if config.pretrained == "none" else classifier_state_dict(spec, config.pretrained, progress)
    model = GeoLocalizationNet(config.backbone, config.fc_output_dim, config.train_all_layers, config.aggregation)
    if state is not None:
        copy_classifier_weights(model.backbone, spec, state)
    return model


def load_model_state(model: GeoLocalizationNet, state_dict: Mapping[str, Any], source: str) -> None:
    """Load saved weights; ones of another backbone, aggregation or descriptor size are a CheckpointError naming
    `source`."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source}: its model weights are a {type(state_dict).__name__}, not a state dict")
    problems = state_mismatches(state_dict, model.state_dict())
    if problems:
        raise CheckpointError(
            f"{source}: its weights do not fit a {model.backbone_name} model with {model.aggregation_name} "
            f"aggregation and descriptor size D={model.fc_output_dim} ({'; '.join(problems)}); it was trained with "
            f"another {flag_of(ModelConfig, 'backbone')}, {flag_of(ModelConfig, 'aggregation')} or "
            f"{flag_of(ModelConfig, 'fc_output_dim')}: build the model with the options of its run"
        )
    model.load_state_dict(state_dict)
