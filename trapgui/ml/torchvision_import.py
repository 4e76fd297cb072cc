"""Import torchvision without importing ``torch._dynamo`` (3 s and ~160 MB of every start-up).

torchvision's ``ops/roi_align.py`` (which every detection model imports through ``ops.poolers``)
runs ``from torch._dynamo.utils import is_compile_supported`` at import time. That one name
pulls in the whole compiler stack (dynamo, sympy, triton's 65 MB library) for a function that
roi_align calls only when torchvision's compiled ops are missing, or for deterministic
algorithms on a GPU; trapgui never compiles. Upstream means it to be lazy (pytorch/vision#8436:
"importing dynamo has undesirable side effects for eager mode only users"); this makes it so.

While torchvision imports, ``torch._dynamo`` and ``torch._dynamo.utils`` are stand-ins whose
``is_compile_supported`` imports the real one on its first call and returns its answer; then
the stand-ins are removed, so any later ``import torch._dynamo`` (torch.compile, a test) gets
the real package. If this torchvision wants anything else from dynamo while importing, the
stand-ins are removed and torchvision is imported the ordinary way.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types

log = logging.getLogger(__name__)

_PACKAGE, _UTILS = "torch._dynamo", "torch._dynamo.utils"


def is_compile_supported(device_type):
    """torch._dynamo.utils.is_compile_supported, imported when first asked."""
    from torch._dynamo.utils import is_compile_supported as real

    return real(device_type)


# dynamo folds the real function to a constant when it traces roi_align; the same for this one
is_compile_supported._dynamo_marked_constant = True  # type: ignore[attr-defined]


def import_torchvision() -> types.ModuleType:
    """torchvision with its detection ops, ``torch._dynamo`` left unimported if it was."""
    import_without_dynamo("torchvision.ops.roi_align")
    return importlib.import_module("torchvision")


def import_without_dynamo(name: str) -> types.ModuleType:
    """Module ``name``, imported with the stand-ins in place (the real dynamo if it needs more)."""
    if name in sys.modules or _PACKAGE in sys.modules:
        return importlib.import_module(name)
    import torch

    package = types.ModuleType(_PACKAGE)
    utils = types.ModuleType(_UTILS)
    utils.is_compile_supported = is_compile_supported
    package.utils = utils
    sys.modules[_PACKAGE], sys.modules[_UTILS] = package, utils
    try:
        return importlib.import_module(name)
    except (ImportError, AttributeError) as exc:  # it wanted more of dynamo than the stand-ins
        # Python has dropped the modules that failed; the next import runs them again for real
        log.info("%s imported with torch._dynamo (%s)", name, exc)
    finally:
        _drop_stand_ins(torch, package, utils)
    return importlib.import_module(name)


def _drop_stand_ins(torch, package, utils) -> None:
    if sys.modules.get(_UTILS) is utils:
        del sys.modules[_UTILS]
    if sys.modules.get(_PACKAGE) is package:
        del sys.modules[_PACKAGE]
    if torch.__dict__.get("_dynamo") is package:
        delattr(torch, "_dynamo")

