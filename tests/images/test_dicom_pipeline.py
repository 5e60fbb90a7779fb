"""The DICOM display pipeline against hand-worked values (DICOM PS3.3 C.11)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfxray.images import META_KEYS, ImageReadError, read_image

from .conftest import make_dicom, pydicom_file


def linear_window(x, center, width):
    """PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR), output scaled to [0, 1], written out by hand."""
    x = np.asarray(x, float)
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    inside = ((x - (center - 0.5)) / (width - 1) + 0.5)
    return np.where(x <= low, 0.0, np.where(x > high, 1.0, inside))


def test_linear_window_hand_values():
    # centre 100, width 51: 74.5 and below is black, above 124.5 is white
    assert linear_window([74, 75, 100, 124, 125], 100, 51) == pytest.approx([0, 0.01, 0.51, 0.99, 1])


def test_rescale_then_window_known_values(dicom_file):
    stored = np.array([[50, 62, 63, 75], [87, 88, 100, 0]], np.uint16)
    path = dicom_file(stored, bits_stored=12, RescaleSlope=2, RescaleIntercept=-50, WindowCenter=100, WindowWidth=51)
    image = read_image(path)
    # modality LUT by hand: 2 * stored - 50 = [[50, 74, 76, 100], [124, 126, 150, -50]]
    expected = [[0, 0, (76 - 99.5) / 50 + 0.5, 0.51], [0.99, 1, 1, 0]]
    assert image.pixels == pytest.approx(np.array(expected), abs=1e-6)
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (2, 4)
    assert image.meta["voi"] == "window"


def test_rescale_known_value_in_known_value_out(dicom_file):
    # LINEAR_EXACT (C.11.2.1.3.2): y = (x - c) / w + 0.5. Stored 1000 -> x = 0.5 * 1000 - 100 = 400
    # -> (400 - 500) / 1000 + 0.5 = 0.4. Stored 0 -> x = -100 -> 0 (clipped); 2400 -> 1100 -> 1.
    stored = np.array([[1000, 0, 2400, 1200]], np.uint16)
    path = dicom_file(stored, bits_stored=12, RescaleSlope=0.5, RescaleIntercept=-100, WindowCenter=500,
                      WindowWidth=1000, VOILUTFunction="LINEAR_EXACT")
    assert read_image(path).pixels == pytest.approx(np.array([[0.4, 0.0, 1.0, 0.5]]), abs=1e-6)


def test_modality_lut_sequence(dicom_file):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.ModalityLUTType = "US"
    item.add_new(0x00283006, "US", [0, 1000, 3000, 4000])  # LUT Data, VR US or OW
    path = dicom_file(np.array([[0, 1, 2, 3]], np.uint16), bits_stored=2, ModalityLUTSequence=[item])
    # LUT output [0, 1000, 3000, 4000], no window: min-max over the image
    assert read_image(path).pixels == pytest.approx(np.array([[0, 0.25, 0.75, 1]]))


def test_voi_lut_sequence_preferred_over_window(dicom_file):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.LUTDescriptor = [4, 10, 8]  # 4 entries, first input 10, 8 bits
    item.add_new(0x00283006, "US", [0, 50, 200, 255])
    stored = np.array([[9, 10, 11, 12, 13, 20]], np.uint16)
    path = dicom_file(stored, bits_stored=8, VOILUTSequence=[item], WindowCenter=100, WindowWidth=10)
    image = read_image(path)
    # below the first input -> first entry; beyond the table -> last entry
    assert image.pixels == pytest.approx(np.array([[0, 0, 50, 200, 255, 255]]) / 255)
    assert image.meta["voi"] == "voi_lut"


def test_several_windows_index_selects(dicom_file):
    stored = np.array([[90, 100, 110, 1000, 1500, 2000]], np.uint16)
    path = dicom_file(stored, bits_stored=12, WindowCenter=[100, 1500], WindowWidth=[51, 1001])
    assert read_image(path).pixels == pytest.approx(linear_window(stored, 100, 51).astype(np.float32))
    assert read_image(path, window=1).pixels == pytest.approx(linear_window(stored, 1500, 1001).astype(np.float32))
    with pytest.raises(ImageReadError, match="window 2 not in the file"):
        read_image(path, window=2)


def test_sigmoid_window(dicom_file):
    stored = np.array([[0, 100, 200]], np.uint16)
    path = dicom_file(stored, bits_stored=8, WindowCenter=100, WindowWidth=50, VOILUTFunction="SIGMOID")
    expected = 1 / (1 + np.exp(-4 * (stored.astype(float) - 100) / 50))  # PS3.3 C.11.2.1.3.1
    assert read_image(path).pixels == pytest.approx(expected, abs=1e-6)


def test_apply_voi_false_and_no_window_scale_by_image_range(dicom_file):
    stored = np.array([[1000, 1500, 2000]], np.uint16)
    windowed = dicom_file(stored, bits_stored=12, WindowCenter=1200, WindowWidth=10)
    assert read_image(windowed).pixels == pytest.approx(np.array([[0, 1, 1]]))
    image = read_image(windowed, apply_voi=False)
    assert image.pixels == pytest.approx(np.array([[0, 0.5, 1]]))  # the image's own min..max, not 0..4095
    assert image.meta["voi"] == "minmax"
    assert read_image(dicom_file(stored, bits_stored=12)).pixels == pytest.approx(np.array([[0, 0.5, 1]]))


def test_unusable_window_falls_back_to_image_range(dicom_file):
    stored = np.array([[10, 20, 30]], np.uint16)
    image = read_image(dicom_file(stored, WindowCenter=20, WindowWidth=0))  # LINEAR needs width >= 1
    assert image.pixels == pytest.approx(np.array([[0, 0.5, 1]]))
    assert "unusable window" in image.meta["recovered"]


def test_monochrome1_inverted_stored_max_is_dark(dicom_file):
    stored = np.array([[0, 1000, 4095]], np.uint16)
    image = read_image(dicom_file(stored, bits_stored=12, photometric="MONOCHROME1"))
    assert image.pixels == pytest.approx(np.array([[1, 1 - 1000 / 4095, 0]]))
    assert image.pixels[0, 2] == 0  # the stored maximum (least attenuation in MONOCHROME1) is black
    windowed = read_image(dicom_file(stored, bits_stored=12, photometric="MONOCHROME1", WindowCenter=2048,
                                     WindowWidth=4096))
    assert windowed.pixels == pytest.approx(1 - linear_window(stored, 2048, 4096))


def test_pixel_padding_masked(dicom_file):
    stored = np.array([[0, 0, 0, 0], [0, 100, 150, 0], [0, 200, 150, 0]], np.uint16)
    image = read_image(dicom_file(stored, bits_stored=12, PixelPaddingValue=0))
    valid = stored != 0
    assert image.meta["pixel_padding_masked"] is True
    np.testing.assert_array_equal(image.valid_mask, valid)
    # min-max over the real pixels only (100..200), padding set to the minimum
    expected = np.where(valid, (stored - 100) / 100, 0)
    assert image.pixels == pytest.approx(expected)
    inverted = read_image(dicom_file(stored, bits_stored=12, PixelPaddingValue=0, photometric="MONOCHROME1"))
    assert inverted.pixels == pytest.approx(np.where(valid, 1 - (stored - 100) / 100, 0))


def test_pixel_padding_range_signed(dicom_file):
    stored = np.array([[-2000, -1500, -1000, 0, 1000]], np.int16)
    image = read_image(dicom_file(stored, signed=True, PixelPaddingValue=-2000, PixelPaddingRangeLimit=-1001))
    np.testing.assert_array_equal(image.valid_mask, [[False, False, True, True, True]])
    assert image.pixels == pytest.approx(np.array([[0, 0, 0, 0.5, 1]]))


def test_multi_frame_stack_and_select(dicom_file):
    stored = np.stack([np.full((4, 5), v, np.uint16) for v in (100, 200, 300)])
    stored[:, 0, 0] = 0
    path = dicom_file(stored, bits_stored=12)
    stack = read_image(path, frame=None)
    assert stack.pixels.shape == (3, 4, 5)
    assert stack.meta["frames"] == 3 and stack.meta["frame"] is None
    # min-max over the whole stack (0..300) keeps frames comparable
    assert stack.pixels[:, 1, 1] == pytest.approx([1 / 3, 2 / 3, 1])
    second = read_image(path, frame=1)
    assert second.pixels.shape == (4, 5) and second.meta["frame"] == 1
    assert second.pixels[1, 1] == pytest.approx(1.0)  # one frame: its own range 0..200
    assert read_image(path, frame=-1).meta["frame"] == 2
    with pytest.raises(ImageReadError, match="frame 3 out of range"):
        read_image(path, frame=3)


def test_single_frame_with_frame_none_is_2d(dicom_file):
    assert read_image(dicom_file(np.zeros((3, 4), np.uint16)), frame=None).pixels.shape == (3, 4)


def test_enhanced_per_frame_window(dicom_file):
    from pydicom.dataset import Dataset

    def group(center, width):
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        item = Dataset()
        item.FrameVOILUTSequence = [voi]
        return item

    stored = np.stack([np.array([[90, 100, 110]], np.uint16)] * 2)
    path = dicom_file(stored, bits_stored=12, PerFrameFunctionalGroupsSequence=[group(100, 51), group(110, 11)])
    stack = read_image(path, frame=None).pixels
    assert stack[0] == pytest.approx(linear_window([[90, 100, 110]], 100, 51))
    assert stack[1] == pytest.approx(linear_window([[90, 100, 110]], 110, 11))


def test_rgb_to_gray_and_colour(dicom_file):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[1, 0] = (0, 0, 255)
    rgb[1, 1] = (255, 255, 255)
    path = dicom_file(rgb, photometric="RGB")
    gray = read_image(path)
    assert gray.pixels == pytest.approx(np.array([[0.299, 0.587], [0.114, 1.0]]), abs=1e-6)
    colour = read_image(path, gray=False)
    assert colour.pixels.shape == (2, 2, 3)
    assert colour.pixels == pytest.approx(rgb / 255)


def test_ybr_full_converted_like_pydicom():
    from pydicom import dcmread
    from pydicom.pixels import convert_color_space, pixel_array

    path = pydicom_file("SC_ybr_full_422_uncompressed.dcm")
    assert dcmread(path).PhotometricInterpretation == "YBR_FULL_422"
    ybr = pixel_array(path, raw=True)  # stored YCbCr (sub-sampling removed)
    reference = convert_color_space(ybr, "YBR_FULL", "RGB").astype(float) / 255
    assert read_image(path, gray=False).pixels == pytest.approx(reference, abs=1e-6)
    gray = read_image(path).pixels
    assert gray == pytest.approx(0.299 * reference[..., 0] + 0.587 * reference[..., 1] + 0.114 * reference[..., 2],
                                 abs=1e-5)


def test_palette_colour():
    from pydicom import dcmread
    from pydicom.pixels import apply_color_lut

    path = pydicom_file("examples_palette.dcm")
    ds = dcmread(path)
    rgb = apply_color_lut(ds.pixel_array, ds)
    rgb = rgb[..., :3].astype(float) / np.iinfo(rgb.dtype).max
    gray = read_image(path).pixels
    assert gray == pytest.approx(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2], abs=1e-5)


def test_safe_metadata_only(dicom_file):
    stored = np.arange(12, dtype=np.uint16).reshape(3, 4)
    path = dicom_file(stored, ViewPosition="PA", ImageLaterality="L", ImagePositionPatient=[0, 0, 12.5],
                      ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    image = read_image(path)
    text = json.dumps(image.meta)  # plain JSON types only: scoring writes it as is
    for secret in ("Doe", "Jane", "19700101", "Nowhere", "WRIST LEFT"):
        assert secret not in text
    assert set(image.meta) <= set(META_KEYS)
    assert image.meta["patient_id"] == "P001"
    assert image.meta["view_position"] == "PA" and image.meta["laterality"] == "L"
    assert image.meta["slice_position"] == pytest.approx(12.5)  # (x × y) · position = z
    assert (image.meta["rows"], image.meta["cols"], image.meta["bits_stored"]) == (3, 4, 16)
    assert image.meta["transfer_syntax"] == "Explicit VR Little Endian"
    assert image.meta["kind"] == "dicom" and image.meta["modality"] == "DX"


def test_slice_location_when_no_geometry(dicom_file):
    assert read_image(dicom_file(np.zeros((2, 2), np.uint16), SliceLocation=-7.5)).meta["slice_position"] == -7.5


def test_max_size_downsamples_by_area(dicom_file):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 4096, (600, 1000)).astype(np.uint16)
    path = dicom_file(stored, bits_stored=12, WindowCenter=2048, WindowWidth=4096)
    full = read_image(path).pixels
    small = read_image(path, max_size=224)
    assert max(small.pixels.shape) <= 224
    assert small.pixels.shape == (120, 200)  # factor ceil(1000 / 224) = 5
    # the window is linear over this range, so a box average of the windowed image agrees
    expected = full.reshape(120, 5, 200, 5).mean(axis=(1, 3))
    assert small.pixels == pytest.approx(expected, abs=2e-4)
    assert small.meta["rows"] == 600  # metadata keeps the file's own size


def test_max_size_keeps_padding_out_of_the_average(dicom_file):
    stored = np.full((4, 4), 1000, np.uint16)
    stored[:, :1] = 0  # padding column
    stored[0, 1] = 2000
    image = read_image(dicom_file(stored, bits_stored=12, PixelPaddingValue=0), max_size=2)
    # 2x2 blocks: the left ones average only their real pixels -> [[1500, 1000], [1000, 1000]]
    # (with the padding averaged in they would be [[750, 1000], [500, 1000]])
    assert image.pixels.shape == (2, 2)
    assert image.valid_mask is None  # every block holds some real pixels
    assert image.pixels == pytest.approx(np.array([[1, 0], [0, 0]]), abs=1e-6)


def test_missing_transfer_syntax_inferred(tmp_path):
    path = make_dicom(tmp_path / "bare", np.array([[1, 2], [3, 4]], np.uint16), preamble=False)
    image = read_image(path)
    assert image.pixels == pytest.approx(np.array([[0, 1 / 3], [2 / 3, 1]]))
    assert "inferred Implicit VR Little Endian" in image.meta["recovered"]
