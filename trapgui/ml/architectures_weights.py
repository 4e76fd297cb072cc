"""Reading published weights files and label maps safely, with errors a researcher can act on.

Torch is imported lazily so that the model store (status, lists, label maps) stays cheap to
import. Weights are only ever read with ``torch.load(..., weights_only=True)``: a model file from the
internet must not be able to run code. Published checkpoints are either a plain state dict or
a dict holding it under ``"model_state_dict"``; DataParallel-trained ones prefix every key with
``"module."``.
"""

from __future__ import annotations

import json
import pickle
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

from typing import TYPE_CHECKING

from trapgui.core.errors import ModelError

if TYPE_CHECKING:  # torch is imported where it is used: the store lists models without it
    import torch
    from torch import nn

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = 0x80  # legacy (pre-1.6) torch.save files start with a pickle protocol opcode
NESTED_KEYS = ("model_state_dict", "state_dict", "model")
BN_COUNTER = "num_batches_tracked"


def sniff_weights_file(path: Path, head: bytes | None = None) -> str | None:
    """A sentence saying why this is clearly not a torch file (an HTML error page, text,
    an empty file), or None when it looks like one. Cheap: reads 512 bytes."""
    if head is None:
        try:
            with open(path, "rb") as fh:
                head = fh.read(512)
        except OSError as exc:
            return f"it cannot be read ({exc.strerror or exc})"
    if not head:
        return "it is empty"
    if head.startswith(ZIP_MAGIC) or head[0] == PICKLE_PROTO:
        return None
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in text:
        return "it is a web page (probably an error page from the server), not model weights"
    if text.startswith((b"{", b"[")):
        return "it is a JSON/text file (a label map?), not model weights"
    return "it is not a PyTorch weights file"


def _safe_globals() -> list:
    """Harmless non-tensor types training scripts often leave in checkpoints (numpy scalars
    for metrics). Allowing them keeps weights_only=True while accepting such files."""
    allowed = []
    try:
        import numpy as np

        allowed += [np.dtype, np.ndarray]
        for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
            try:
                module = __import__(mod, fromlist=["scalar", "_reconstruct"])
                allowed += [module.scalar, module._reconstruct]
                break
            except (ImportError, AttributeError):
                continue
        allowed += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")]
    except ImportError:
        pass
    return allowed


_ALLOWED = threading.Lock()
_allowed_done = False


def _allow_numpy_scalars() -> None:
    """Once per process (the ``safe_globals`` context manager is not thread-safe, and worker
    threads load models concurrently)."""
    global _allowed_done
    import torch

    with _ALLOWED:
        if not _allowed_done:
            torch.serialization.add_safe_globals(_safe_globals())
            _allowed_done = True


def load_checkpoint_file(path: str | Path, display_name: str | None = None) -> object:
    """``torch.load`` with weights_only=True (memory-mapped when possible, so optimiser state
    in a training checkpoint is never read into memory). Raises ModelError on a bad file."""
    import torch
    path = Path(path)
    name = display_name or path.name  # what the user calls it (not a temporary copy's name)
    problem = sniff_weights_file(path)
    if problem:
        raise ModelError(f"The file {name} cannot be used: {problem}.")
    _allow_numpy_scalars()
    try:
        is_zip = zipfile.is_zipfile(path)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"The file {name} holds Python objects besides model weights, which trapgui "
            f"refuses to load for safety ({first}).") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"The file {name} is damaged or incomplete and cannot be read "
                         f"({type(exc).__name__}: {str(exc).strip()[:200]}).",
                         hint="Download it again, or import a good copy.") from exc


def extract_state_dict(checkpoint: object, filename: str = "the file") -> "OrderedDict[str, torch.Tensor]":
    """The state dict inside a published checkpoint, with any DataParallel ``module.`` prefix
    removed (and the per-module metadata torch keeps for BatchNorm versions carried over)."""
    import torch
    state = checkpoint
    if isinstance(state, dict) and not _is_state_dict(state):
        for key in NESTED_KEYS:
            if isinstance(state.get(key), dict) and _is_state_dict(state[key]):
                state = state[key]
                break
    if not isinstance(state, dict) or not _is_state_dict(state):
        raise ModelError(f"{filename} does not contain model weights (no state dict found; "
                         f"top-level entries: {_preview(checkpoint)}).")
    tensors = OrderedDict((k, v) for k, v in state.items() if isinstance(v, torch.Tensor))
    metadata = getattr(state, "_metadata", None)
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = OrderedDict((k[len("module."):], v) for k, v in tensors.items())
        if metadata is not None:
            metadata = {("" if k == "module" else k[len("module."):] if k.startswith("module.") else k): v
                        for k, v in metadata.items()}
    if metadata is not None:
        tensors._metadata = metadata  # type: ignore[attr-defined]
    return tensors


def _is_state_dict(obj: dict) -> bool:
    import torch
    return bool(obj) and all(isinstance(k, str) for k in obj) and \
        sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def _preview(obj: object) -> str:
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:6]]
        return ", ".join(keys) + (", ..." if len(obj) > 6 else "") if keys else "none"
    return type(obj).__name__


def load_state_dict_strict(model: nn.Module, state_dict: dict, model_name: str,
                           assign: bool = False, what: str = "This file") -> None:
    """``load_state_dict(strict=True)`` with the mismatch explained in words.

    BatchNorm's ``num_batches_tracked`` counters are ignored both ways: they do not affect
    inference and depend only on whether training used frozen or plain BatchNorm.
    ``assign=True`` (for a model built on the meta device) takes the file's tensors as the
    parameters, converted to the model's dtypes and copied out of any memory-mapped file."""
    import torch
    expected = model.state_dict()
    state = OrderedDict(state_dict)
    if hasattr(state_dict, "_metadata"):
        state._metadata = state_dict._metadata  # type: ignore[attr-defined]
    for key, value in expected.items():
        if key.endswith(BN_COUNTER) and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and not k.endswith(BN_COUNTER)]
    mismatched = [(k, tuple(state[k].shape), tuple(expected[k].shape))
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        raise ModelError(f"{what} is not the weights for {model_name}: "
                         f"{_describe_mismatch(missing, unexpected, mismatched)}.",
                         hint="Check that you picked the right model for this file.")
    if assign:
        for key, value in expected.items():
            if key in state:
                state[key] = state[key].to(dtype=value.dtype, copy=True)
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:
        raise ModelError(f"{what} is not the weights for {model_name}: "
                         f"{str(exc).strip()[:300]}.") from exc


def _describe_mismatch(missing, unexpected, mismatched) -> str:
    parts = []
    if mismatched:
        k, got, want = mismatched[0]
        parts.append(f"{len(mismatched)} layer(s) have the wrong shape (e.g. {k}: the file has "
                     f"{list(got)}, the model expects {list(want)})")
    if missing:
        parts.append(f"{len(missing)} layer(s) the model needs are missing "
                     f"(e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} layer(s) in the file do not belong to this model "
                     f"(e.g. {', '.join(unexpected[:3])})")
    return "; ".join(parts)


def parse_label_map(obj: object, filename: str = "the label map") -> list[str]:
    """``{label: index}`` (the published format) → labels by index. Also accepts
    ``{index: label}`` and a plain list. Labels stay strings, numeric GBIF ids included."""
    def as_index(value) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return None

    if isinstance(obj, list) and all(isinstance(v, (str, int)) for v in obj):
        labels = [str(v) for v in obj]
    elif isinstance(obj, dict) and obj:
        if all(as_index(v) is not None for v in obj.values()):
            pairs = [(as_index(v), str(k)) for k, v in obj.items()]
        elif all(as_index(k) is not None for k in obj) and all(isinstance(v, str) for v in obj.values()):
            pairs = [(as_index(k), v) for k, v in obj.items()]
        else:
            raise ModelError(f"{filename} is not a label map: expected {{label: index}}.")
        indices = sorted(i for i, _ in pairs)
        if indices != list(range(len(pairs))):
            raise ModelError(f"{filename} is not a usable label map: its indices are not "
                             f"0..{len(pairs) - 1} without gaps or repeats.")
        labels = [label for _, label in sorted(pairs)]
    else:
        raise ModelError(f"{filename} is not a label map: expected {{label: index}}.")
    if not labels:
        raise ModelError(f"{filename} is empty.")
    return labels


def read_label_map(path: str | Path, display_name: str | None = None) -> list[str]:
    path = Path(path)
    name = display_name or path.name
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ModelError(f"The label map {name} cannot be read ({exc.strerror or exc}).") from exc
    if raw.lstrip()[:1] == b"<":
        raise ModelError(f"The label map {name} is a web page (probably an error page "
                         "from the server), not a label map.")
    try:
        obj = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"The label map {name} is not valid JSON ({exc}).") from exc
    return parse_label_map(obj, f"The label map {name}")


def write_label_map(labels: list[str], path: str | Path) -> None:
    """The published format, ``{label: index}``."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({label: i for i, label in enumerate(labels)}, fh, ensure_ascii=False)


def build_with_weights(architecture: str, model_name: str, weights_path: str | Path,
                       num_classes: int, labels_count: int | None = None,
                       display_name: str | None = None) -> nn.Module:
    """Build ``architecture`` and load the published file into it strictly (eval mode, CPU).

    ``labels_count``: the label map's length, checked against the file's own class count so
    that a weights file paired with the wrong label map is named as such."""
    from trapgui.ml.architectures import build_architecture, classes_in_state_dict

    path = Path(weights_path)
    name = display_name or path.name
    state = extract_state_dict(load_checkpoint_file(path, name), name)
    in_file = classes_in_state_dict(architecture, state)
    if labels_count is not None and in_file is not None and in_file != labels_count:
        raise ModelError(f"The weights file {name} was trained for {in_file} classes but "
                         f"the label map has {labels_count} labels: they do not belong together "
                         f"(or this is not the weights for {model_name}).")
    # Built on the meta device: random initialisation would be thrown away (and takes
    # seconds for the big heads); the file's tensors become the parameters.
    model = build_architecture(architecture, num_classes, device="meta")
    load_state_dict_strict(model, state, model_name, assign=True, what=name)
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        # A tensor the file does not hold (a non-persistent buffer): build it for real.
        model = build_architecture(architecture, num_classes)
        load_state_dict_strict(model, state, model_name, what=name)
    return model.eval()
