"""Backbone weights from elsewhere: torchvision state dicts converted to Keras, gray first convs.

Gray first convolutions (``model.gray_input: sum-first-conv``): ``gray_first_conv_kernel`` and
``fold_first_conv_kernel`` turn a pretrained RGB first kernel into the kernel of a backbone fed
one gray channel; ``models.classifier`` applies them when it copies pretrained weights.

On a machine with PyTorch, three lines export torchvision's ImageNet ResNeXt as ``.npz``
(tfxray itself never needs PyTorch)::

    import numpy as np, torchvision
    sd = torchvision.models.resnext50_32x4d(weights="IMAGENET1K_V1").state_dict()
    np.savez("resnext50_32x4d.npz", **{k: v.numpy() for k, v in sd.items()})

``tfxray weights convert resnext50_32x4d resnext50_32x4d.npz --out resnext50_32x4d.weights.h5``
then writes a Keras weights file for the registered backbone; set ``model.weights`` to it.
The archive is read with ``allow_pickle=False``: a user's file is never unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import atomic_path
from .backbones import build_backbone, get_spec

IGNORED_SUFFIXES = ("num_batches_tracked",)


def torch_key(keras_layer_name: str) -> str:
    """``layer1_0_downsample_0`` -> ``layer1.0.downsample.0`` (the state dict's module path)."""
    return keras_layer_name.replace("_", ".")


def conv_kernel_from_torch(weight: np.ndarray) -> np.ndarray:
    """torch (out, in/groups, kh, kw) -> Keras (kh, kw, in/groups, out)."""
    return np.transpose(weight, (2, 3, 1, 0))


def gray_first_conv_kernel(kernel: np.ndarray) -> np.ndarray:
    """Adapt an RGB first convolution to one channel by summing its kernel over the colours.

    On a gray image g, conv(sum_c K_c, g) equals conv(K, [g, g, g]): the same response as
    replicating the radiograph to three channels, for a third of the input.
    """
    return kernel.sum(axis=2, keepdims=True)


def fold_first_conv_kernel(kernel: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """An RGB first convolution for a gray image g plus an image-support channel s (1 inside, 0 in padding).

    When the RGB input was ``x_c = scale[c] * g + offset[c]`` (a per-channel normalisation of a
    replicated gray image), ``conv(K, x) = conv(sum_c scale[c] K_c, g) + conv(sum_c offset[c] K_c, s)``
    exactly, zero padding included (there x_c = 0 and g = s = 0). Returns (kh, kw, 2, out).
    """
    image = np.einsum("hwco,c->hwo", kernel, np.asarray(scale, np.float64))
    support = np.einsum("hwco,c->hwo", kernel, np.asarray(offset, np.float64))
    return np.stack([image, support], axis=2).astype(kernel.dtype)


def convert_torchvision_state(name: str, npz_path: str | Path, out_path: str | Path) -> Path:
    """Write a Keras weights file for backbone ``name`` from a torchvision state dict (.npz)."""
    import keras

    spec = get_spec(name)
    if not spec.torchvision_name:
        raise UserError(f"weights convert: {name} takes Keras' own ImageNet weights, not a torchvision file")
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise UserError(f"{npz_path}: file not found")
    try:
        with np.load(npz_path, allow_pickle=False) as archive:
            state = {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as exc:
        raise UserError(f"{npz_path}: not a readable .npz state dict ({exc})") from None
    state = {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES) and not k.startswith("fc.")}

    model = build_backbone(name, (spec.default_size, spec.default_size, 3), weights=None)
    used, missing, misshaped = set(), [], []
    for layer in model.layers:
        key = torch_key(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            values = [_take(state, f"{key}.weight", used, missing)]
            values = [conv_kernel_from_torch(v) if v is not None else None for v in values]
        elif isinstance(layer, keras.layers.BatchNormalization):
            values = [_take(state, f"{key}.{p}", used, missing) for p in ("weight", "bias", "running_mean", "running_var")]
        else:
            continue
        if any(v is None for v in values):
            continue
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(v.shape) for v in values] != expected:
            misshaped.append(f"{key} {[v.shape for v in values]} != {expected}")
            continue
        layer.set_weights([v.astype(np.float32) for v in values])
    unexpected = sorted(set(state) - used)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s), e.g. {', '.join(unexpected[:3])}")
    if misshaped:
        problems.append(f"wrong shapes: {'; '.join(misshaped[:2])}")
    if problems:
        raise UserError(f"{npz_path}: does not match {name}: " + "; ".join(problems))
    out_path = Path(out_path)
    if not out_path.name.endswith(".weights.h5"):
        raise UserError(f"--out {out_path}: Keras weights files end in .weights.h5")
    with atomic_path(out_path) as tmp:
        final = tmp.with_name(tmp.name.replace(".tmp.h5", ".tmp.weights.h5"))
        model.save_weights(final)
        final.replace(tmp)
    return out_path


def _take(state: dict, key: str, used: set, missing: list):
    if key not in state:
        missing.append(key)
        return None
    used.add(key)
    return state[key]


# --------------------------------------------------------------------------- Keras' ImageNet cache

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def keras_cache_dir() -> Path:
    """Where ``keras.utils.get_file(..., cache_subdir="models")`` keeps the ImageNet files.

    Resolved as Keras does: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` when the home
    folder is not writable), and ``/tmp/.keras`` when that folder cannot be written or created.
    Keras reads KERAS_HOME once, at import, so this is where a fresh tfxray process looks.
    """
    import os
    import tempfile

    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        user_home = os.path.expanduser("~")
        home = os.path.join(user_home if os.access(user_home, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    if not _writable_or_creatable(Path(home)):
        home = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(home) / "models"


def _writable_or_creatable(folder: Path) -> bool:
    import os

    folder = folder.absolute()
    while not folder.exists():  # Keras creates its home folder on import when it can
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def _hash_matches(path: Path, expected: str) -> tuple[bool, str]:
    """Compare a file with a hash as Keras declares it (64 hex digits: sha256, else md5)."""
    import hashlib

    digest = hashlib.sha256() if len(expected) == 64 else hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest() == expected, digest.hexdigest()


def imagenet_file_path(backbone: str) -> Path:
    """The file Keras opens for ``backbone``'s ImageNet weights (present or not)."""
    spec = get_spec(backbone)
    if spec.torchvision_name:
        raise UserError(
            f"weights path: {backbone} takes ImageNet weights converted from torchvision, not a Keras file "
            f"(see 'tfxray weights convert --help')"
        )
    if not spec.imagenet_file:
        raise UserError(f"weights path: {backbone} has no ImageNet weights")
    return keras_cache_dir() / spec.imagenet_file


def ensure_imagenet_file(backbone: str, download=None) -> Path:
    """Keras' ImageNet file for ``backbone``, intact in its cache: checked, and fetched now when missing
    or corrupt (``download(spec, cache_dir)``; Keras' own by default), so a training fails before it
    makes anything rather than when it builds its model. A one-line UserError when it cannot be had."""
    from .backbones import download_failure, offline_weights_message

    path = imagenet_file_path(backbone)
    spec = get_spec(backbone)
    if path.is_file() and (not spec.imagenet_md5 or _hash_matches(path, spec.imagenet_md5)[0]):
        return path
    try:
        (download or _keras_download)(spec, path.parent)
    except Exception as exc:  # offline, refused, interrupted: Keras raises a bare Exception
        raise UserError(offline_weights_message(backbone, download_failure(exc))) from None
    if not path.is_file():
        raise UserError(offline_weights_message(backbone, f"{path} still missing after the download"))
    return path


def _keras_download(spec, cache_dir: Path) -> None:
    """Fetch the file exactly as keras.applications would (same name, URL, hash and folder)."""
    import keras

    keras.utils.get_file(spec.imagenet_file, spec.imagenet_url, cache_subdir=cache_dir.name,
                         cache_dir=str(cache_dir.parent), file_hash=spec.imagenet_md5)


def imagenet_files() -> list[dict]:
    """Each registered backbone's ImageNet file, where Keras looks for it, and its state there.

    status: present | missing | corrupt (hash differs: Keras would download it again) |
    convert (torchvision weights, 'tfxray weights convert') | none (no ImageNet weights).
    """
    from .backbones import BACKBONES

    rows = []
    for name, spec in sorted(BACKBONES.items()):
        row = {"backbone": name, "file": spec.imagenet_file or "", "url": spec.imagenet_url or "", "path": "",
               "present": False}
        if spec.imagenet_file:
            path = keras_cache_dir() / spec.imagenet_file
            row.update(path=str(path), present=path.is_file(), status="missing")
            if row["present"]:
                intact = not spec.imagenet_md5 or _hash_matches(path, spec.imagenet_md5)[0]
                row["status"] = "present" if intact else "corrupt"
        elif spec.torchvision_name:
            row.update(file="(torchvision: tfxray weights convert)", status="convert")
        else:
            row["status"] = "none"
        rows.append(row)
    return rows


def import_imagenet_file(source: str | Path) -> Path:
    """Copy an ImageNet file fetched elsewhere into Keras' cache after checking its name and hash."""
    import shutil

    from .backbones import BACKBONES

    source = Path(source)
    if not source.is_file():
        raise UserError(f"{source}: file not found")
    specs = {spec.imagenet_file: spec for spec in BACKBONES.values() if spec.imagenet_file}
    spec = specs.get(source.name)
    if spec is None:
        raise UserError(f"{source}: not a file tfxray knows (expected one of: {', '.join(sorted(specs))})")
    if spec.imagenet_md5:
        intact, actual = _hash_matches(source, spec.imagenet_md5)
        if not intact:
            raise UserError(
                f"{source}: hash {actual} does not match Keras' {spec.imagenet_md5} (incomplete download or another file)"
            )
    else:  # Keras declares no hash for this file: at least make sure it is HDF5
        with open(source, "rb") as handle:
            if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                raise UserError(f"{source}: not an HDF5 weights file (incomplete download or another file)")
    target = keras_cache_dir() / source.name
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
