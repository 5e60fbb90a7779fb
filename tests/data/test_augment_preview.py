"""tfxray augment-preview writes a PNG grid; a recipe without augmentation is a one-line error."""

import numpy as np
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.data.synth import write_png16


def test_preview_grid_for_offline_and_online(tmp_path):
    image = tmp_path / "phantom.png"
    write_png16(image, np.tile(np.linspace(0, 1, 48, dtype=np.float32), (48, 1)))
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["augment-preview", str(image), "--recipe", "wrist", "--out", str(out),
                                      "--n", "4", "--set", "data.input_size=48"])
    assert result.exit_code == 0, result.output
    assert "4 tile(s) (offline x8)" in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(cli, ["augment-preview", str(image), "--recipe", "vertebral-radiograph", "--out",
                                      str(out), "--n", "2", "--set", "data.input_size=48"])
    assert result.exit_code == 0 and "(online)" in result.output, result.output


def test_nothing_to_preview_is_one_line(tmp_path):
    image = tmp_path / "phantom.png"
    write_png16(image, np.zeros((16, 16), np.float32))
    result = CliRunner().invoke(cli, ["augment-preview", str(image), "--recipe", "demo", "--out",
                                      str(tmp_path / "g.png")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no augmentation to preview" in result.output
    assert not (tmp_path / "g.png").exists()
