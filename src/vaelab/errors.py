"""The failures a user can act on, in one place: a stage reports each as one clear line and exits non-zero.

(:class:`vaelab.config.ConfigError`, :class:`vaelab.data.DataError`, :class:`vaelab.download.DownloadError`
and :class:`vaelab.tracking.TrackingError` live beside the code that raises them.)
"""


class CheckpointError(RuntimeError):
    """A file is not a readable vaelab checkpoint."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: training diverged."""


class ReportError(RuntimeError):
    """An input of the report (metrics, history, figure) is missing or malformed."""
