"""A sweep trial's figures: the training seconds it reports are those the run recorded."""

from __future__ import annotations

import pytest

from cosplace_xs.config import RunConfig
from cosplace_xs.sweep.trial import _timing


def test_a_trial_reports_the_training_seconds_its_epochs_recorded() -> None:
    config = RunConfig().replace({"train.batch_size": 4, "train.iterations_per_epoch": 5})
    # images_per_s disagrees on purpose: the seconds are read as recorded, not recomputed from a rate
    history = [{"epoch": 1, "train_seconds": 2.0, "images_per_s": 999.0, "val_seconds": 1.5},
               {"epoch": 2, "train_seconds": 3.0, "images_per_s": 999.0, "val_seconds": 0.5}]
    assert _timing(history, config) == {"train_seconds": 5.0, "images_per_s": pytest.approx(40 / 5.0),
                                        "val_seconds": 2.0}
