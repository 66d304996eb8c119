"""Importing pretrained weights: VGG16 ImageNet and the released FCNs (FCN paper, sections 3.1
and 4.3; FCN reference release), and a previous stage's checkpoint (staged 32s -> 16s -> 8s).

Files (``read_arrays``): ``.npz``, ``.safetensors`` and, with torch installed, ``.pth``/``.pt``;
each a flat {name: array} in one of two layouts:

- torchvision VGG16 or AlexNet (``model.backbone``): ``features.N.weight/bias`` (conv, OIHW),
  ``classifier.N`` (linear, [out, in]): renamed to the reference names below
  (``TORCHVISION_NAMES``);
- reference names: conv1_1 .. conv5_3 (AlexNet: conv1 .. conv5; GoogLeNet: conv1 .. conv3,
  inception3a.branch1 ..), fc6, fc7, fc8, score_fr, score_pool4, score_pool3
  (OIHW), upscore2, upscore_pool4, upscore / upscore16 / upscore8 (Caffe's Deconvolution
  layout [in, out, kh, kw], no bias), keys ``name.weight`` / ``name.bias``.

torchvision's GoogLeNet is not imported: every convolution of it is followed by batch
normalisation (folding it in would change the net the paper used, which had none), its
"5x5" branches are 3x3 convolutions, and it carries auxiliary classifiers; the GoogLeNet
classifier pretrained here (``models.classifier``) is written in reference names instead.

Net surgery ("convolutionalization", paper section 3.1): a linear fc6 [4096, 25088] (torch and
Caffe flatten a 512x7x7 map in C, H, W order) becomes a 7x7x512x4096 HWIO kernel, fc7 a 1x1.
fc8 (the ImageNet classifier) is dropped and reported; score layers absent from a VGG16 file
keep their zero init, upsampling layers their bilinear init.

Input convention: torchvision's VGG16 expects RGB scaled to 0..1 and normalised by the
ImageNet mean and std: the normalisation of ``FCN`` (``model.caffe=False``). Caffe weights
(the VGG16 caffemodel, the released FCNs) expect BGR, mean-subtracted, 0..255: the input of
``CaffeFCN`` (``model.caffe=True``). ``convention="auto"`` takes torchvision names as the
torchvision convention and reference names as Caffe's for VGG16 (the release's nets) and as
torchvision's for the other backbones, which have no Caffe layout here; a mismatch with the
model is an error.

Every difference between a file and the model (missing, unexpected, wrong shape) is listed in
one ``WeightsError``; nothing is skipped silently.
"""

import os
import zipfile

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from fcn_jax import models
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.models.backbones import FULL_BACKBONE
from fcn_jax.models.caffe import CaffeFCN
from fcn_jax.models.fcn import FINAL_UPSAMPLING_NAMES, UPSAMPLING_LAYERS
from fcn_jax.models.alexnet import ALEXNET_CONVS
from fcn_jax.models.vgg import VGG16_BLOCKS

SKIP_LAYERS = ("score_pool4", "score_pool3")
# Dropped on import, and reported: the ImageNet classifier the paper replaces by score_fr.
DISCARDED = ("fc8.weight", "fc8.bias")
CONVENTIONS = ("auto", "caffe", "torchvision")


class WeightsError(ValueError):
    """A weight file or checkpoint does not fit the model; the message lists every problem,
    and ``problems`` holds them where there is a list."""

    def __init__(self, message: str, problems: list[str] = ()):
        super().__init__(message)
        self.problems = list(problems)


def torchvision_vgg16_names() -> dict[str, str]:
    """{"features.0": "conv1_1", ..., "classifier.6": "fc8"}: torchvision's module indices."""
    names, index = {}, 0
    for block, depth, _ in VGG16_BLOCKS:
        for i in range(1, depth + 1):
            names[f"features.{index}"] = f"{block}_{i}"
            index += 2  # conv, ReLU
        index += 1  # max pool
    names.update({"classifier.0": "fc6", "classifier.3": "fc7", "classifier.6": "fc8"})
    return names


def torchvision_alexnet_names() -> dict[str, str]:
    """{"features.0": "conv1", ..., "classifier.6": "fc8"}: torchvision's module indices."""
    names, index = {}, 0
    for name, *_, pooled in ALEXNET_CONVS:
        names[f"features.{index}"] = name
        index += 2 + pooled  # conv, ReLU (, max pool)
    names.update({"classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"})
    return names


TORCHVISION_VGG16 = torchvision_vgg16_names()
# model.backbone -> torchvision's names for its layers (GoogLeNet: none, see above).
TORCHVISION_NAMES = {"vgg16": TORCHVISION_VGG16, "alexnet": torchvision_alexnet_names()}


FORMATS = {".npz": "a numpy .npz archive of arrays (no pickled objects)",
           ".safetensors": "a safetensors file",
           ".pth": "a torch state dict", ".pt": "a torch state dict"}


def read_arrays(path: str) -> dict[str, np.ndarray]:
    """{name: float32 array} from a .npz, .safetensors or (with torch) .pth/.pt file.

    A file that cannot be read as its extension says is a ``WeightsError`` naming the path
    and the expected format. Pickled objects are never loaded.
    """
    extension = os.path.splitext(path)[1]
    if extension not in FORMATS:
        raise WeightsError(f"{path}: expected a .npz, .safetensors, .pth or .pt file")
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file")
    try:
        arrays = read_format(path, extension)
        return {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    except WeightsError:
        raise
    except Exception as error:  # numpy, zipfile, safetensors and torch each raise their own
        if extension == ".npz" and not zipfile.is_zipfile(path):
            reason = "it is not a zip archive, which a .npz is"
        elif "pickle" in str(error).lower():
            reason = "it holds pickled objects, which are never loaded"
        else:
            reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
        raise WeightsError(f"{path} cannot be read as {FORMATS[extension]} ({reason}); "
                           "download or convert it again") from None


def read_format(path: str, extension: str) -> dict:
    """The raw arrays of a weight file, by its extension."""
    if extension == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return dict(archive)
    if extension == ".safetensors":
        from safetensors.numpy import load_file
        return load_file(path)
    try:
        import torch
    except ImportError as error:
        raise WeightsError(f"{path}: reading .pth files needs torch (pip install -r "
                           "requirements-torch.txt); or convert it to .npz elsewhere with "
                           "python -m fcn_jax.import_weights ... --npz OUT.npz") from error
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.detach().float().numpy() for k, v in state.items()}


def check_known_names(arrays: dict, variables: dict, source: str) -> None:
    """A file none of whose names belongs to a known layout is not weights for this model."""
    layers = {k.rpartition(".")[0] for k in arrays}
    known = {k.rpartition(".")[0] for k in variables} | {k.rpartition(".")[0] for k in DISCARDED}
    if arrays and not layers & known:
        names = ", ".join(sorted(arrays)[:5]) + (", ..." if len(arrays) > 5 else "")
        expected = ", ".join(sorted(variables)[:2])
        raise WeightsError(
            f"{source}: none of its {len(arrays)} arrays has a layer name this importer knows "
            f"({names}); expected torchvision VGG16 / AlexNet names (features.N.weight, "
            f"classifier.N.weight) or the model's reference names ({expected}, ..., "
            "score_fr.weight)")


def torchvision_backbone(layers: set) -> str | None:
    """The backbone whose torchvision names the layers are (None: not torchvision's layout).
    VGG16's and AlexNet's share ``features.0``; their other indices tell them apart."""
    matches = {b: len(layers & names.keys()) for b, names in TORCHVISION_NAMES.items()}
    best = max(matches, key=matches.get)
    return best if matches[best] else None


def file_backbone(layers: set) -> str | None:
    """The backbone a file's layer names belong to, by the names only that backbone has
    (None: none of them, e.g. a file of score layers only)."""
    found = torchvision_backbone(layers)
    if found is None and any(layer.startswith("inception") for layer in layers):
        found = "googlenet"
    elif found is None and "conv1_1" in layers:
        found = "vgg16"
    elif found is None and "conv5" in layers:
        found = "alexnet"
    return found


def to_reference_names(arrays: dict, backbone: str) -> tuple[dict, str]:
    """Rename a torchvision state dict of ``backbone`` to reference names; returns (arrays,
    layout). A file of another backbone is an error naming both."""
    layers = {key.rpartition(".")[0] for key in arrays}
    found = file_backbone(layers)
    if found not in (None, backbone):
        layout = "torchvision" if torchvision_backbone(layers) else "reference-name"
        raise WeightsError(f"these are {layout} {found} weights but the model has "
                           f"model.backbone={backbone!r}: set model.backbone={found}")
    if torchvision_backbone(layers) is None:
        return dict(arrays), "reference"
    names = TORCHVISION_NAMES[backbone]
    renamed = {}
    for key, value in arrays.items():
        layer, _, param = key.rpartition(".")
        name = names.get(layer)
        renamed[f"{name}.{param}" if name else key] = value
    return renamed, "torchvision"


def reference_name(path: tuple) -> str:
    """Model variable path -> reference name: ("trunk", "fc6", "kernel") -> "fc6.weight"."""
    *layers, leaf = [str(p) for p in path if p != "trunk"]
    return ".".join(layers + [{"kernel": "weight"}.get(leaf, leaf)])


def file_shapes(name: str, shape: tuple) -> list[tuple]:
    """The file shapes that convert to a model variable of ``shape`` (HWIO for kernels)."""
    if not name.endswith(".weight"):
        return [shape]
    kh, kw, cin, cout = shape
    if name.split(".")[0] in UPSAMPLING_LAYERS:
        return [(cin, cout, kh, kw)]
    shapes = [(cout, cin, kh, kw)]
    if name.split(".")[0] in ("fc6", "fc7"):
        shapes.append((cout, cin * kh * kw))  # a linear layer before net surgery
    return shapes


def to_model_layout(name: str, array: np.ndarray, shape: tuple) -> np.ndarray:
    """Convert a reference-layout array to the model's layout (HWIO kernels).

    Linear [out, C*H*W] -> [out, C, H, W] (torch/Caffe flatten order) -> HWIO. Caffe's
    Deconvolution [in, out, kh, kw] is the adjoint of a convolution (torch's
    conv_transpose2d); lax.conv_transpose does not flip its kernel, so the kernel is flipped.
    """
    if not name.endswith(".weight"):
        return array
    kh, kw, cin, cout = shape
    if name.split(".")[0] in UPSAMPLING_LAYERS:
        return np.ascontiguousarray(array[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
    return np.ascontiguousarray(array.reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0))


def to_reference_layout(name: str, array: np.ndarray) -> np.ndarray:
    """The inverse of ``to_model_layout`` for a convolutionalized net: HWIO kernels to OIHW,
    upsampling kernels to Caffe's Deconvolution layout [in, out, kh, kw] (flipped back)."""
    if not name.endswith(".weight"):
        return np.asarray(array)
    if name.split(".")[0] in UPSAMPLING_LAYERS:
        return np.ascontiguousarray(array[::-1, ::-1].transpose(2, 3, 0, 1))
    return np.ascontiguousarray(array.transpose(3, 2, 0, 1))


def reference_arrays(model: nnx.Module) -> dict[str, np.ndarray]:
    """Every variable of ``model`` under its reference name, in the reference layout: a file
    ``load_reference`` reads back into the same net."""
    return {name: to_reference_layout(name, np.asarray(var[...]))
            for name, var in model_variables(model).items()}


def model_variables(model: nnx.Module) -> dict[str, nnx.Variable]:
    """{reference name: variable} for every variable of the model."""
    return {reference_name(path): var for path, var in nnx.to_flat_state(nnx.state(model))}


def assign(variable: nnx.Variable, value: np.ndarray) -> None:
    """Set ``variable`` to ``value`` (same shape), cast to the variable's dtype: the value is
    placed as it is, with none of the small per-shape programs that an in-place update
    (``variable[...] = value``) compiles, about a second of every run that loads weights."""
    if value.shape != variable.shape:
        raise ValueError(f"assigning shape {value.shape} to a variable of shape {variable.shape}")
    variable.set_value(jnp.asarray(value, variable.dtype))


def check_convention(layout: str, convention: str, model: nnx.Module) -> str:
    """The weights' input convention; an error if the model expects another."""
    if convention not in CONVENTIONS:
        raise WeightsError(f"model.init_convention={convention!r}: expected one of {CONVENTIONS}")
    if convention == "auto":
        caffe_names = layout == "reference" and model.backbone == FULL_BACKBONE
        convention = "caffe" if caffe_names else "torchvision"
    caffe_model = isinstance(model, CaffeFCN)
    if caffe_model != (convention == "caffe"):
        wanted = "True" if convention == "caffe" else "False"
        raise WeightsError(
            f"these weights expect the {convention} input convention ({layout} layout, "
            f"convention {convention!r}) but the model has model.caffe={caffe_model}: set "
            f"model.caffe={wanted}, or model.init_convention if the file's names mislead")
    return convention


def mismatches(arrays: dict, expected: dict) -> list[str]:
    """Every missing, unexpected and wrong-shaped array, one line each."""
    problems = [f"missing: {k} (model shape {', or '.join(map(str, file_shapes(k, v.shape)))})"
                for k, v in expected.items() if k not in arrays]
    problems += [f"unexpected: {k} {arrays[k].shape}" for k in arrays
                 if k not in expected and k not in DISCARDED]
    for key in sorted(expected.keys() & arrays.keys()):
        accepted = file_shapes(key, expected[key].shape)
        if arrays[key].shape not in accepted:
            problems.append(f"wrong shape: {key} file {arrays[key].shape} vs model "
                            f"{' or '.join(map(str, accepted))}")
    return problems


def fixed_value_mismatches(converted: dict, variables: dict) -> list[str]:
    """Fixed (non-Param) variables, e.g. bilinear upsampling, must equal the file's values."""
    return [f"fixed in this model but different in the file: {k} (max |diff| "
            f"{np.abs(value - np.asarray(variables[k][...])).max():.3g}); make it learnable"
            for k, value in converted.items()
            if not isinstance(variables[k], nnx.Param)
            and not np.allclose(value, np.asarray(variables[k][...]), rtol=1e-5, atol=1e-6)]


def raise_if(problems: list[str], source: str) -> None:
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise WeightsError(f"{source} does not fit the model ({count}):\n  "
                           + "\n  ".join(problems), problems)


def fitted(model: nnx.Module, arrays: dict, convention: str, source: str) -> tuple:
    """A state dict (either layout) checked against ``model``'s names, shapes and input
    convention, and converted to its layout, nothing assigned: (converted arrays, the file's
    arrays by reference name, layout, convention). ``model`` may be abstract
    (``models.shape_of``): only shapes are read.

    A file without score layers is a classifier's trunk (VGG16, AlexNet, GoogLeNet): only the
    trunk is expected and the heads keep their initialisation. Otherwise every model variable
    must be in the file.
    """
    arrays, layout = to_reference_names(arrays, model.backbone)
    variables = model_variables(model)
    check_known_names(arrays, variables, source)
    convention = check_convention(layout, convention, model)
    trunk_only = not any(k.startswith("score_") for k in arrays)
    trunk = model_variables(model.trunk)
    expected = {k: v for k, v in variables.items() if not trunk_only or k in trunk}
    raise_if(mismatches(arrays, expected), source)
    converted = {k: to_model_layout(k, arrays[k], v.shape) for k, v in expected.items()}
    return converted, arrays, layout, convention


# The class count an abstract model is built with to check a trunk-only file (a classifier's),
# whose score layers are not compared: any count would do.
ANY_NUM_CLASSES = 2
MISFITS_SHOWN = 3  # of a misfit's problems, in its one line


def misfit(model_config: dict, path: str) -> str | None:
    """What keeps the weight file ``path`` from initialising the FCN that ``model_config`` (a
    resolved config's ``model`` section, as JSON) describes, in one line that leaves the path
    to the caller; None when it fits. The checks of ``load_reference``: for a trunk-only file
    (a classifier's, all of whose layers are learned) on the model's shapes
    (``models.shape_of``: nothing computed), for a file with score layers on a built model
    (its fixed layers, e.g. bilinear upsampling, must equal the file's), at the file's own
    class count (the run checks that against the data's)."""
    config = ml_collections.ConfigDict(model_config)
    try:
        arrays = read_arrays(path)
        score = arrays.get("score_fr.weight")
        if score is None:
            fitted(models.shape_of(config, ANY_NUM_CLASSES), arrays, config.init_convention,
                   path)
        else:
            load_reference(models.build(config, int(score.shape[0]), seed=0), arrays,
                           convention=config.init_convention, source=path)
    except WeightsError as error:
        if error.problems:
            more = len(error.problems) - MISFITS_SHOWN
            return "; ".join(error.problems[:MISFITS_SHOWN]) + (f"; and {more} more"
                                                                 if more > 0 else "")
        return str(error).removeprefix(f"{path}: ").removeprefix(f"{path} ")
    return None


def load_reference(model: nnx.Module, arrays: dict, *, convention: str = "auto",
                   source: str = "the weights") -> dict:
    """Load a state dict (either layout) into ``model`` in place (``fitted`` says what must
    fit); returns what was done."""
    converted, arrays, layout, convention = fitted(model, arrays, convention, source)
    variables = model_variables(model)
    raise_if(fixed_value_mismatches(converted, variables), source)
    for key, value in converted.items():
        assign(variables[key], value)
    return {"layout": layout, "convention": convention, "loaded": sorted(converted),
            "discarded": sorted(k for k in arrays if k in DISCARDED),
            "kept_init": sorted(variables.keys() - converted.keys())}


def read_checkpoint_params(path: str) -> tuple[dict[str, np.ndarray], int]:
    """{reference name: array} of the latest checkpoint's params in a workdir, and its step."""
    path = path.rstrip("/")
    workdir = os.path.dirname(path) if os.path.basename(path) == "checkpoints" else path
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise WeightsError(f"{path}: not a training workdir (no checkpoints/ directory)")
    checkpointer = Checkpointer(workdir, create=False)
    try:
        params, step = checkpointer.read_params()
    except FileNotFoundError as error:
        raise WeightsError(str(error)) from None
    finally:
        checkpointer.close()
    flat = nnx.traversals.flatten_mapping(params)
    return {reference_name(p[:-1] if p[-1] == "value" else p): np.asarray(v)
            for p, v in flat.items()}, step


def load_previous_stage(model: nnx.Module, arrays: dict, source: str) -> dict:
    """Staged training (paper section 4.2): copy a coarser net's layers, same names and shapes.

    Only the finer net's skip and upsampling layers may be absent (they keep their init:
    zero scores, bilinear upsampling); only a coarser net's final upsampling may be left over.
    """
    variables = model_variables(model)
    new = {k for k in variables.keys() - arrays.keys()
           if k.split(".")[0] not in SKIP_LAYERS + UPSAMPLING_LAYERS}
    problems = [f"missing: {k} {variables[k].shape}" for k in sorted(new)]
    problems += [f"unexpected: {k} {arrays[k].shape}"
                 for k in sorted(arrays.keys() - variables.keys())
                 if k.split(".")[0] not in FINAL_UPSAMPLING_NAMES.values()]
    problems += [f"wrong shape: {k} checkpoint {arrays[k].shape} vs model {variables[k].shape}"
                 for k in sorted(arrays.keys() & variables.keys())
                 if arrays[k].shape != variables[k].shape]
    raise_if(problems, source)
    for key in arrays.keys() & variables.keys():
        assign(variables[key], arrays[key])
    return {"layout": "checkpoint", "loaded": sorted(arrays.keys() & variables.keys()),
            "discarded": sorted(arrays.keys() - variables.keys()),
            "kept_init": sorted(variables.keys() - arrays.keys())}


def initialise(model: nnx.Module, source: str, convention: str = "auto") -> dict:
    """Load ``source`` into ``model``: a training workdir (or its checkpoints/ directory) of a
    previous stage, or a weight file (``load_reference``)."""
    if os.path.isdir(source):
        return load_previous_stage(model, read_checkpoint_params(source)[0], source)
    if not os.path.exists(source):
        raise WeightsError(f"model.init_from={source!r}: no such file or directory")
    return load_reference(model, read_arrays(source), convention=convention, source=source)
