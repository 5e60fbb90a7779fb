"""Install tfxray: the library in tfxray/, the Click app in cli/ (installed as tfxray.cli)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def version():
    for line in (HERE / "tfxray" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip('"')
    raise RuntimeError("tfxray/__init__.py has no __version__")


setup(
    name="tfxray",
    version=version(),
    description="Transfer learning, evaluation and batch scoring for fracture detection on radiographs",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["tfxray", "tfxray.*"]) + ["tfxray.cli", "tfxray.recipes"],
    package_dir={"tfxray.cli": "cli", "tfxray.recipes": "recipes"},
    package_data={"tfxray.recipes": ["*.yaml"]},
    install_requires=requirements(),
    extras_require={
        # The CUDA build replaces tensorflow-cpu; install it into a fresh environment.
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22"],
        "test": ["pytest>=7.4", "pytest-xdist>=3.5", "pycocotools>=2.0", "hypothesis>=6.100"],
    },
    entry_points={"console_scripts": ["tfxray=tfxray.cli.main:main"]},
)
