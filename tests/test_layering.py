"""The house's one direction of imports (shared/DESIGN.md), checked on every module, imports inside functions too.

cli -> demo -> scoring -> (training | explain) -> models -> (data | config) -> images, with
evaluation a leaf that any layer may use (and that imports no TensorFlow), and errors/io/progress the
ground everything stands on. The one declared exception: config looks names up in the model
registries it validates against.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# rank of each layer: a module may import its own layer and any lower rank; never higher, never a sibling
RANKS = {
    "ground": 0, "evaluation": 1, "images": 2, "data": 3, "config": 3, "models": 4, "training": 5, "explain": 5,
    "scoring": 6, "demo": 7, "cli": 8,
}
GROUND = {"tfxray", "tfxray.__version__", "tfxray.errors", "tfxray.io", "tfxray.progress"}
# (importer layer, imported module prefix): the declared exceptions
ALLOWED = {("config", "tfxray.models.backbones"), ("config", "tfxray.models.freeze")}


def layer_of(module: str) -> str:
    if module in GROUND:
        return "ground"
    parts = module.split(".")
    if parts[:2] == ["tfxray", "cli"]:
        return "cli"
    return parts[1]


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "cli":
        parts = ["tfxray", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, module: str):
    return imports_in(path.read_text(), module, is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool = False):
    """(line, absolute module) of every import in ``source``, at any depth."""
    package = module if is_package else module.rsplit(".", 1)[0]
    tree = ast.parse(source)
    type_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:  # ``if TYPE_CHECKING:`` imports are annotations, never run
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target in ("tfxray", ""):  # "from . import x": x may be a module
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"
            else:
                yield node.lineno, target


def _is_type_checking_block(node) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def sources():
    return sorted([*ROOT.joinpath("tfxray").rglob("*.py"), *ROOT.joinpath("cli").rglob("*.py")])


def test_every_import_points_down():
    violations = []
    for path in sources():
        module = module_name(path)
        own = layer_of(module)
        for line, target in imports_of(path, module):
            if not target.startswith("tfxray."):
                continue
            other = layer_of(target)
            if other == "ground" or other == own or any(own == a and target.startswith(b) for a, b in ALLOWED):
                continue
            if RANKS[other] >= RANKS[own]:
                violations.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {target} ({other})")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_evaluation_imports_no_tensorflow():
    found = []
    for path in sorted(ROOT.joinpath("tfxray", "evaluation").rglob("*.py")):
        for line, target in imports_of(path, module_name(path)):
            if target.split(".")[0] in ("tensorflow", "keras", "tf_keras_vis", "keras_cv"):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not found, "\n".join(found)


def test_the_checker_sees_an_upward_import_inside_a_function():
    source = "def f():\n    from ..scoring.batch import score_folder\n    import tfxray.demo\n"
    found = list(imports_in(source, "tfxray.images.probe"))
    assert found == [(2, "tfxray.scoring.batch"), (3, "tfxray.demo")]
    assert all(RANKS[layer_of(target)] > RANKS["images"] for _, target in found)
