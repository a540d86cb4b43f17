"""Metric-learning fine-tune of an embedding backbone on identity-labelled crops.

    from deerid.training import TrainConfig, train
    model = train(load_identity_folder(root), TrainConfig(), out_dir)

See docs/training.md for the recipe and its measured effect.
"""

from deerid.training.data import TrainingDataError
from deerid.training.loop import TrainConfig, TrainedModel, train
from deerid.training.progress import progress_line

__all__ = ["TrainConfig", "TrainedModel", "TrainingDataError", "progress_line", "train"]
