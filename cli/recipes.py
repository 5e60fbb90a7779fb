"""tfxray recipes: the published protocols shipped with tfxray."""

from __future__ import annotations

import click


@click.group("recipes")
def recipes():
    """List and show built-in recipes.

    \b
    Example:
      tfxray recipes list
      tfxray recipes show wrist
    """


@recipes.command("list")
def list_recipes():
    """Names and one-line descriptions of the built-in recipes.

    \b
    Example:
      tfxray recipes list
      tfxray recipes show wrist          # every field, defaults filled in
      tfxray train wrist --data data/wrist/manifest.csv --out runs/wrist
    """
    from tfxray.config import builtin_recipe_names, read_recipe_dict

    for name in builtin_recipe_names():
        description = str(read_recipe_dict(name).get("description", "")).strip().splitlines()
        click.echo(f"{name:<24}{description[0] if description else ''}")


@recipes.command("show")
@click.argument("name")
def show(name: str):
    """Print a recipe as tfxray resolves it (all fields, defaults filled in).

    \b
    Example:
      tfxray recipes show wrist
    """
    import yaml

    from tfxray.config import load_recipe

    click.echo(yaml.safe_dump(load_recipe(name).to_dict(), sort_keys=False), nl=False)
