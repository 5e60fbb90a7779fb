"""Reading radiographs: DICOM (every transfer syntax pydicom + pylibjpeg decode), PNG, JPEG, TIFF.

``read_image(path)`` gives display-ready float32 pixels in [0, 1] (bone bright) and safe metadata
(no names, no free text); ``sniff(path)`` tells the file type by signature, never by suffix.
"""

from .base import (DEFAULT_MAX_PIXELS, IMAGE_KINDS, META_KEYS, ImageReadError, NotAnImageError, RadiographImage,
                   check_pixel_budget, pixel_limit)
from .reader import read_image
from .sniff import list_files, sniff

__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_KINDS", "META_KEYS", "ImageReadError", "NotAnImageError", "RadiographImage",
    "check_pixel_budget", "list_files", "pixel_limit", "read_image", "sniff",
]
