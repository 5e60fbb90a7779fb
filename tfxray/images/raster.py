"""PNG, JPEG and TIFF -> float32 pixels in [0, 1] without losing bit depth.

Keras' image loaders go through 8-bit Pillow modes and clip 16-bit radiographs; here:

* integer samples are divided by their full scale: 8-bit by 255, 16-bit by 65535 (TIFF: by
  2^BitsPerSample - 1, so a 12-bit TIFF uses its whole range); 1-bit images give 0 and 1;
* float TIFFs already in [0, 1] are kept, other float or signed/32-bit integer TIFFs are min-max
  scaled over the image (they have no defined full scale);
* 16-bit colour PNGs, which Pillow hands out as 8-bit RGB, are decoded twice by Pillow's own PNG
  decoder, once for the high and once for the low byte of each sample, and recombined;
* TIFF "min-is-white" (the TIFF twin of MONOCHROME1) is inverted so bone stays bright;
* RGB/RGBA/palette/CMYK become gray by luminance (BT.601, as Pillow's "L") when ``gray=True``;
  an alpha channel is dropped;
* multi-page TIFFs and animated PNGs are stacks: ``frame`` picks a page, ``frame=None`` reads all.

With ``max_size``, JPEGs are decoded at a reduced DCT scale (Pillow ``draft``) and every image is
then box-averaged by an integer factor until its longer side fits.

Before any pixel is decoded, the declared size (Pillow's ``size`` after ``open``, tifffile's page
shapes) is checked against the pixel limit (``base.pixel_limit``); Pillow's own decompression-bomb
limit (``PIL.Image.MAX_IMAGE_PIXELS``) is reported the same way. tifffile has no such limit.
"""

from __future__ import annotations

import math

import numpy as np

from .base import (ImageReadError, NotAnImageError, RadiographImage, area_downsample, check_pixel_budget, describe,
                   empty_meta, frame_index, luminance, pixel_limit, scale_by_range)
from .sniff import NotARegularFileError, open_regular


def read_raster(path, kind: str, *, frame: int | None = 0, gray: bool = True, max_size: int | None = None,
                max_pixels: int | None = None) -> RadiographImage:
    """Read a PNG, JPEG or TIFF file (``kind`` from ``sniff``); ``max_pixels``: see ``base.pixel_limit``."""
    from PIL import Image

    limit = pixel_limit(max_pixels)
    try:
        if kind == "tiff":
            try:
                frames, meta = _read_tiff_tifffile(path, frame, limit)
            except _TifffileCannot:
                frames, meta = _read_pillow(path, kind, frame, max_size, limit)
        else:
            frames, meta = _read_pillow(path, kind, frame, max_size, limit)
    except ImageReadError:
        raise
    except NotARegularFileError as exc:
        raise NotAnImageError(path, exc.strerror) from None
    except Image.UnidentifiedImageError:  # its message quotes the file object
        raise ImageReadError(path, f"cannot decode {kind.upper()}: Pillow cannot identify it (a broken header?)") from None
    except Image.DecompressionBombError:  # Image.open refuses over twice PIL.Image.MAX_IMAGE_PIXELS
        raise ImageReadError(path, f"declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, over Pillow's limit "
                                   "(PIL.Image.MAX_IMAGE_PIXELS)") from None
    except MemoryError:
        raise ImageReadError(path, f"cannot decode {kind.upper()}: out of memory") from None
    except Exception as exc:  # noqa: BLE001  truncated or corrupt files, OverflowError…
        raise ImageReadError(path, f"cannot decode {kind.upper()}: {describe(exc)}") from None

    if any(pixels.shape != frames[0].shape for pixels in frames):
        raise ImageReadError(path, "the pages differ in size or samples: read them one at a time (frame=N)")
    colour = frames[0].ndim == 3
    stack = np.stack(frames)  # (F, H, W) or (F, H, W, C), float32 in [0, 1]
    if max_size is not None:
        stack, _ = area_downsample(stack, max_size, channels_last=colour)
    if colour and gray:
        stack = luminance(stack)
    elif colour:
        stack = stack[..., :3]
    pixels = stack[0] if meta["frame"] is not None or len(stack) == 1 else stack
    if not np.isfinite(pixels).all():
        raise ImageReadError(path, f"the {kind.upper()} decoder gave non-finite pixel values")
    return RadiographImage(np.ascontiguousarray(pixels, dtype=np.float32), meta, None)


class _TifffileCannot(Exception):
    """tifffile lacks the codec (LZW, JPEG… need imagecodecs) or the layout: let Pillow try."""


def _raster_meta(kind: str, photometric: str, bits: int, height: int, width: int, n_frames: int,
                 index: int | None) -> dict:
    meta = empty_meta(kind)
    meta.update(photometric=photometric, bits_stored=int(bits), rows=int(height), cols=int(width),
                frames=int(n_frames), frame=index)
    return meta


# ---------------------------------------------------------------- Pillow (PNG, JPEG, TIFF fallback)

_PILLOW_PHOTOMETRIC = {"1": "MONOCHROME2", "L": "MONOCHROME2", "LA": "MONOCHROME2", "I": "MONOCHROME2",
                       "I;16": "MONOCHROME2", "I;16B": "MONOCHROME2", "I;16L": "MONOCHROME2", "F": "MONOCHROME2",
                       "P": "PALETTE COLOR", "PA": "PALETTE COLOR", "RGB": "RGB", "RGBA": "RGB", "RGBX": "RGB",
                       "CMYK": "CMYK", "YCbCr": "YBR_FULL", "LAB": "LAB", "HSV": "HSV"}


def _read_pillow(path, kind: str, frame: int | None, max_size: int | None, limit: int):
    from PIL import Image

    with open_regular(path) as handle, Image.open(handle) as image:
        width, height = image.size
        if not width or not height:
            raise ImageReadError(path, f"declares an empty image ({height} x {width})")
        _check_pillow_limit(path, width, height)
        n_frames = int(getattr(image, "n_frames", 1) or 1)
        index = frame_index(path, frame, n_frames)
        wanted = [index] if index is not None else list(range(n_frames))
        check_pixel_budget(path, height, width, len(wanted), len(image.getbands()), limit)
        photometric = _PILLOW_PHOTOMETRIC.get(image.mode, image.mode)
        frames, bits = [], 8
        for number in wanted:
            if number:
                image.seek(number)
                if image.size != (width, height):  # frames of another size (APNG, multi-page TIFF)
                    _check_pillow_limit(path, *image.size)
                    check_pixel_budget(path, image.size[1], image.size[0], len(wanted), len(image.getbands()), limit)
            if kind == "jpeg" and max_size is not None and number == 0:
                # DCT-domain reduction to the smallest 1/2, 1/4, 1/8 scale still >= max_size
                image.draft(image.mode, (max_size, max_size))
            pixels, bits = _pillow_pixels(path, image, kind)
            frames.append(pixels)
        if frames and frames[0].ndim == 2 and photometric == "RGB":  # 16-bit gray+alpha PNG, opened as RGBA
            photometric = "MONOCHROME2"
    return frames, _raster_meta(kind, photometric, bits, height, width, n_frames, index)


def _check_pillow_limit(path, width: int, height: int) -> None:
    """Pillow only warns (DecompressionBombWarning) between MAX_IMAGE_PIXELS and twice that: refuse those too."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        raise ImageReadError(path, f"declares {height} x {width} = {width * height:,} pixels, over Pillow's limit of "
                                   f"{Image.MAX_IMAGE_PIXELS:,} (PIL.Image.MAX_IMAGE_PIXELS)")


def _pillow_pixels(path, image, kind: str) -> tuple[np.ndarray, int]:
    """One Pillow frame -> float32 (H, W) or (H, W, 3|4) in [0, 1], and its bits per sample."""
    mode = image.mode
    rawmode = _png_16bit_colour_rawmode(image) if kind == "png" else None
    if rawmode is not None:
        return _png_16bit_colour(path, rawmode), 16
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.uint16).astype(np.float32) / np.float32(65535), 16
    if mode == "I":  # 16-bit PNG in older Pillows; 32-bit integer TIFF
        values = np.asarray(image, dtype=np.int64)
        if kind == "png" or (values.min() >= 0 and values.max() <= 65535 and image.info.get("bits", 16) == 16):
            return values.astype(np.float32) / np.float32(65535), 16
        return scale_by_range(values, float(values.min()), float(values.max())), 32
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        return _float_to_unit(values), 32
    if mode == "1":
        return np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255), 1
    if mode == "L":
        return np.asarray(image, dtype=np.float32) / np.float32(255), 8
    if mode == "LA":
        return np.asarray(image, dtype=np.float32)[..., 0] / np.float32(255), 8
    if mode in ("RGB", "RGBA", "RGBX"):
        return np.asarray(image, dtype=np.float32)[..., :3] / np.float32(255), 8
    # Palette, CMYK, YCbCr, LAB…: let Pillow convert to RGB
    return np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255), 8


def _float_to_unit(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.float32)
    low, high = float(finite.min()), float(finite.max())
    if low >= 0.0 and high <= 1.0:
        return np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0).astype(np.float32)
    return np.nan_to_num(scale_by_range(values, low, high), nan=0.0)


def _png_16bit_colour_rawmode(image) -> str | None:
    """Pillow's rawmode when a PNG holds 16-bit colour (or gray+alpha) samples it would cut to 8 bits."""
    tile = getattr(image, "tile", None) or []
    if len(tile) != 1:
        return None
    rawmode = tile[0][3] if not hasattr(tile[0], "args") else tile[0].args
    if isinstance(rawmode, tuple):
        rawmode = rawmode[0]
    return rawmode if rawmode in ("RGB;16B", "RGBA;16B", "LA;16B") else None


def _png_16bit_colour(path, rawmode: str) -> np.ndarray:
    """Decode a 16-bit colour PNG with Pillow's own PNG (zip) decoder, keeping all 16 bits.

    Pillow unpacks 16-bit colour samples to 8 bits (the high byte). Its unpackers also accept the
    same bytes as little endian, which takes the *low* byte of each big-endian sample; decoding
    twice and recombining gives the full samples. Gray+alpha (4 bytes a pixel) is decoded as raw
    RGBA bytes instead: (gray high, gray low, alpha high, alpha low). Written here because no
    installed library reads 16-bit colour PNGs without loss.
    """
    from PIL import Image

    def decode(as_rawmode: str) -> np.ndarray:
        with open_regular(path) as handle, Image.open(handle) as image:  # mode RGB or RGBA (Pillow opens gray+alpha 16 as RGBA)
            tile = image.tile[0]
            image.tile = [tile._replace(args=as_rawmode) if hasattr(tile, "_replace")
                          else (tile[0], tile[1], tile[2], as_rawmode)]
            image.load()
            return np.asarray(image, dtype=np.uint16)

    if rawmode == "LA;16B":
        raw = decode("RGBA")
        return ((raw[..., 0] << 8) | raw[..., 1]).astype(np.float32) / np.float32(65535)
    high, low = decode(rawmode), decode(rawmode.replace(";16B", ";16L"))
    return ((high << 8) | low).astype(np.float32)[..., :3] / np.float32(65535)


# ---------------------------------------------------------------- tifffile

_TIFF_PHOTOMETRIC = {0: "MONOCHROME1", 1: "MONOCHROME2", 2: "RGB", 3: "PALETTE COLOR"}


def _read_tiff_tifffile(path, frame: int | None, limit: int):
    import tifffile

    try:
        with open_regular(path) as handle, tifffile.TiffFile(handle) as tif:
            series = tif.series[0] if tif.series else None
            pages = list(series.pages) if series is not None else list(tif.pages)
            pages = [page for page in pages if page is not None]
            if not pages:
                raise _TifffileCannot("no pages")
            first = pages[0]
            photometric = int(first.photometric)
            if photometric not in _TIFF_PHOTOMETRIC:  # YCbCr, CMYK, CIELab…: Pillow converts them
                raise _TifffileCannot(f"photometric {photometric}")
            index = frame_index(path, frame, len(pages))
            wanted = [index] if index is not None else list(range(len(pages)))
            _check_tiff_budget(path, [pages[number] for number in wanted], limit)
            frames = [_tiff_page_pixels(pages[number], photometric) for number in wanted]
            bits = int(first.bitspersample)
            meta = _raster_meta("tiff", _TIFF_PHOTOMETRIC[photometric], bits, first.imagelength, first.imagewidth,
                                len(pages), index)
            return frames, meta
    except ImageReadError:
        raise
    except (KeyError, NotImplementedError, ValueError, _TifffileCannot) as exc:
        # KeyError / ValueError: a codec that needs imagecodecs (LZW, PackBits, JPEG…) or a layout
        # tifffile rejects; Pillow reads most of those.
        raise _TifffileCannot(str(exc)) from None


def _check_tiff_budget(path, pages: list, limit: int) -> None:
    """tifffile has no decompression-bomb limit: check the declared page shapes before decoding any."""
    first = pages[0]
    rows, cols = int(first.imagelength), int(first.imagewidth)
    if not rows or not cols:
        raise ImageReadError(path, f"declares an empty image ({rows} x {cols})")
    total = sum(math.prod(page.shape) for page in pages)
    if total <= limit:
        return
    samples = max(1, math.prod(first.shape) // (rows * cols))  # samples, and depth of a volume page
    check_pixel_budget(path, rows, cols, len(pages), samples, limit)
    raise ImageReadError(path, f"declares {total:,} pixels in {len(pages)} pages, over the limit of {limit:,} "
                               "(TFXRAY_MAX_PIXELS)")  # pages of different sizes


def _tiff_page_pixels(page, photometric: int) -> np.ndarray:
    values = page.asarray()
    axes = getattr(page, "axes", "")
    if "S" in axes and axes.index("S") < len(axes) - 1:  # planar configuration: samples first
        values = np.moveaxis(values, axes.index("S"), -1)
    values = np.squeeze(values) if values.ndim > 3 else values
    if photometric == 3:  # palette: 16-bit colormap (3, 2^bits)
        colormap = np.asarray(page.colormap, dtype=np.float32) / np.float32(65535)
        return colormap[:, values].transpose(1, 2, 0).astype(np.float32)
    bits = int(page.bitspersample)
    if values.dtype == bool:
        unit = values.astype(np.float32)
    elif np.issubdtype(values.dtype, np.unsignedinteger) and bits <= 16:
        unit = values.astype(np.float32) / np.float32(2 ** bits - 1)
    elif np.issubdtype(values.dtype, np.floating):
        unit = _float_to_unit(values.astype(np.float32))
    else:  # signed or 32-bit integers: no defined full scale
        unit = scale_by_range(values, float(values.min()), float(values.max()))
    if photometric == 0:  # min-is-white: invert so bone is bright
        unit = 1.0 - unit
    if unit.ndim == 3:
        unit = unit[..., :3] if unit.shape[-1] >= 3 else unit[..., 0]
    return unit.astype(np.float32)
