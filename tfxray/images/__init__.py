"""Reading radiographs: DICOM (every transfer syntax pydicom + pylibjpeg decode), PNG, JPEG, TIFF.

``read_image(path)`` gives display-ready float32 pixels in [0, 1] (bone bright) and safe metadata
(no names, no free text); ``sniff(path)`` tells the file type by signature, never by suffix.
"""

from .base import IMAGE_KINDS, META_KEYS, ImageReadError, NotAnImageError, RadiographImage
from .reader import read_image
from .sniff import list_files, sniff

__all__ = [
    "IMAGE_KINDS", "META_KEYS", "ImageReadError", "NotAnImageError", "RadiographImage", "list_files",
    "read_image", "sniff",
]
