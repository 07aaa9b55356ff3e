"""The failures a user can act on, all in this one module: a stage reports each as one clear line naming the
file, key or server, and exits non-zero (:func:`vaelab.pipeline.stage.run_stage`). Raise and catch them from here."""


class ConfigError(ValueError):
    """params.yaml (or an override) does not describe a valid experiment."""


class DataError(RuntimeError):
    """An MNIST file under data/ is missing, truncated or not what it claims to be."""


class DownloadError(RuntimeError):
    """No mirror delivered a verified copy of an archive."""


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


class CheckpointError(RuntimeError):
    """A file is not a readable vaelab checkpoint."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: training diverged."""


class ReportError(RuntimeError):
    """An input of the report (metrics, history, figure) is missing or malformed."""


class NoReferencePosteriorError(ConfigError):
    """An exact reference posterior was asked of an SBI task that has none here (slcp): use sbibm's published
    samples (``vaelab.sbi.sbibm_files.reference_samples``) instead."""


# What a stage reports as one line and exit 1 instead of a traceback.
EXPECTED: tuple[type[Exception], ...] = (ConfigError, DataError, DownloadError, TrackingError, CheckpointError,
                                         NonFiniteLossError, ReportError, NoReferencePosteriorError)
