"""Exception types for errors a user can cause: each message names the thing and the fix."""


class CosplaceError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class BadFileNameError(CosplaceError):
    """An image file name does not follow the `@utm_east@utm_north@...@.jpg` format."""


class DatasetLayoutError(CosplaceError):
    """A dataset folder is missing, empty or not laid out as expected."""


class BadImageError(CosplaceError):
    """One or more image files cannot be decoded."""


class ConfigError(CosplaceError):
    """An option or configuration value is out of its allowed range."""


class RunFolderError(CosplaceError):
    """A run or output folder is in use by another process, not writable, or cannot continue as asked."""


class CheckpointError(CosplaceError):
    """A checkpoint is missing, corrupted, unsafe or does not match the model options."""


class WeightsUnavailableError(CosplaceError):
    """Pretrained weights were asked for but cannot be obtained."""


class TrainingDivergedError(CosplaceError):
    """The training loss became NaN or infinite."""
