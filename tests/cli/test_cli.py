"""CLI conventions: help with an example everywhere, version, one-line errors and exit codes."""

import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tfxray import __version__
from tfxray.cli.main import COMMANDS, cli


def all_commands():
    names = []
    for name in COMMANDS:
        command = cli.get_command(None, name)
        names.append((name,))
        for sub in getattr(command, "commands", {}):
            names.append((name, sub))
    return names


@pytest.mark.parametrize("words", all_commands(), ids=" ".join)
def test_every_command_has_help_with_an_example(words):
    result = CliRunner().invoke(cli, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert "Example" in result.output


def test_synth_help_lists_every_task_it_renders():
    from tfxray.data.synth import TASKS

    result = CliRunner().invoke(cli, ["synth", "--help"])
    assert result.exit_code == 0
    for name in TASKS:
        assert f"{name}: " in result.output
    refused = CliRunner().invoke(cli, ["synth", "out", "--task", "knee"])
    assert refused.exit_code == 2 and "'knee' is not one of " + ", ".join(f"'{t}'" for t in TASKS) in refused.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_top_level_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tfxray.cli.main", "--help"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    for name in COMMANDS:
        assert name in out.stdout
    assert "tensorflow" not in sys.modules or elapsed < 5  # no heavy import just for help
    assert elapsed < 5


def test_help_does_not_import_tensorflow():
    code = "import sys; from tfxray.cli.main import cli; cli.main(['--help'], standalone_mode=False); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_usage_error_exits_2():
    result = CliRunner().invoke(cli, ["train", "wrist"])
    assert result.exit_code == 2
    assert "--data and --out are required" in result.output


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["train", "wirst", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: recipe 'wirst' not found (did you mean 'wrist'?)"]
    assert "Traceback" not in result.output


def test_unknown_recipe_key_from_the_command_line(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\n")
    result = CliRunner().invoke(
        cli, ["train", "demo", "--data", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r"), "--set", "train.lrr=1"]
    )
    assert result.exit_code == 2
    assert "unknown key 'lrr' (did you mean 'lr'?)" in result.output


def test_score_on_a_missing_run_dir_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "nope"), str(tmp_path)])
    assert result.exit_code == 2


def test_score_on_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(cli, ["score", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert "not a tfxray run directory" in result.output


def test_recipes_list_and_show():
    runner = CliRunner()
    listed = runner.invoke(cli, ["recipes", "list"])
    assert listed.exit_code == 0 and "wrist" in listed.output and "Kim & MacKinnon" in listed.output
    shown = runner.invoke(cli, ["recipes", "show", "wrist"])
    assert shown.exit_code == 0 and "backbone: inception_v3" in shown.output


def test_synth_command(tmp_path):
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "d"), "--n", "5", "--size", "48"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "manifest.csv").is_file()
    assert "wrote 5 images" in result.output
