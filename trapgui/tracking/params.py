"""The tracker's settings. The dataclass lives in ``core.tracking_params`` so that the user
settings (``config``, which may not import the tracker's numpy/scipy code) can hold and
validate it; it is the same class."""

from trapgui.core.tracking_params import TrackingParams

__all__ = ["TrackingParams"]
