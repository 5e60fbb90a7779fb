"""``tfxray``: the Click group. Each command lives in its own module; heavy imports are lazy."""

from __future__ import annotations

import errno
import sys

import click

from tfxray import __version__

from .common import echo_err, quiet_tensorflow

quiet_tensorflow()  # at import, before any command or library module imports TensorFlow

# OSErrors that say the output could not be written (not a bug): reported in one line, exit 1
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}

COMMANDS = {
    # name: (module, attribute)
    "demo": ("demo", "demo"),
    "synth": ("synth", "synth"),
    "train": ("train", "train"),
    "evaluate": ("evaluate", "evaluate"),
    "score": ("score", "score"),
    "gradcam": ("gradcam", "gradcam"),
    "export": ("export", "export"),
    "merge": ("merge", "merge"),
    "inspect": ("inspect", "inspect_command"),
    "recipes": ("recipes", "recipes"),
    "augment-preview": ("augment_preview", "augment_preview"),
    "show-batch": ("show_batch", "show_batch"),
    "weights": ("weights", "weights"),
}


class TfxrayGroup(click.Group):
    """Loads command modules on demand and turns tfxray's errors into one line and an exit code."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import importlib

        module, attribute = COMMANDS[name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)

    def invoke(self, ctx):
        from tfxray.errors import TfxrayError

        try:
            return super().invoke(ctx)
        except TfxrayError as exc:
            echo_err(f"error: {exc}")
            ctx.exit(exc.exit_code)
        except OSError as exc:
            # the last net for a write that failed outside tfxray.io (a full disk, a read-only file system):
            # one line and exit 1 (a RunError), like every other failure of a started run
            if exc.errno not in OUTPUT_ERRNOS:
                raise
            echo_err(f"error: {_one_line(exc)}")
            ctx.exit(1)
        except KeyboardInterrupt:
            echo_err("interrupted")
            ctx.exit(130)


def _one_line(exc: OSError) -> str:
    """``PATH: reason`` for an OSError; libraries such as h5py put the path and a long report in the message."""
    import os
    import re

    filename = exc.filename
    text = str(exc.strerror or exc)
    if filename is None:
        named = re.search(r"filename = '([^']+)'", text)
        filename = named.group(1) if named else None
    if "\n" in text or len(text) > 200:
        text = os.strerror(exc.errno)
    return f"{filename}: {text}" if filename else text


@click.group(cls=TfxrayGroup, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "TFXRAY"})
@click.version_option(__version__, prog_name="tfxray")
@click.option("--no-progress", is_flag=True,
              help="No progress bars or per-epoch lines (on by default; a log file gets plain lines, never bars).")
def cli(no_progress):
    """Transfer learning, evaluation and batch scoring for fracture detection on radiographs.

    \b
    Start here:
      tfxray demo --out tfxray-demo      the whole job on synthetic radiographs
      tfxray recipes list                the published protocols
      tfxray train wrist --data manifest.csv --out runs/wrist --freeze all-but-top
    """
    quiet_tensorflow()
    if no_progress:
        from tfxray.progress import disable

        disable()


def main(argv=None):
    quiet_tensorflow()
    return cli.main(args=argv, prog_name="tfxray")


if __name__ == "__main__":
    sys.exit(main())
