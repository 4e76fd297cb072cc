"""torchvision imported without torch._dynamo: same ops, the real dynamo still importable after.

Each case runs in a new interpreter: the point is what a fresh process imports.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_fresh(code: str, tmp_path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          env={"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_building_and_running_the_models_leave_dynamo_and_triton_unimported(tmp_path):
    out = run_fresh("""
        import sys
        import trapgui.pipeline.engine, trapgui.ml.registry, trapgui.ml.crops
        import torch, torchvision.models.detection
        from trapgui.ml.architectures import build_architecture
        from trapgui.ml.crops import stack_crops
        from trapgui.ml.detector_input import detector_input
        # built on meta (as weights are loaded), then for real to run
        for arch in ("fasterrcnn_mobilenet_v3_large_fpn_ami", "fasterrcnn_resnet50_fpn",
                     "torchvision_resnet50", "timm_resnet50"):
            build_architecture(arch, 3, device="meta")
        detector = build_architecture("fasterrcnn_mobilenet_v3_large_fpn_ami", 2)
        image = torch.randint(0, 256, (3, 240, 320), dtype=torch.uint8)
        with torch.inference_mode():
            x = detector_input(image, detector.transform)
            detector([x])
            crops = stack_crops([image], [torch.tensor([[10.0, 20.0, 90.0, 100.0]])], 32).crops
            build_architecture("torchvision_resnet50", 3)(crops)
        print(sorted(n for n in ("torch._dynamo", "torch._inductor", "triton", "sympy")
                     if n in sys.modules))
        """, tmp_path)
    assert out.strip() == "[]"


def test_a_meta_build_skips_random_fills_and_a_real_build_still_draws_them(tmp_path):
    out = run_fresh("""
        import torch
        from trapgui.ml.architectures import build_architecture
        meta = build_architecture("fasterrcnn_mobilenet_v3_large_fpn_ami", 2, device="meta")
        real = build_architecture("fasterrcnn_mobilenet_v3_large_fpn_ami", 2)
        shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}
        print("same shapes", shapes(meta) == shapes(real))
        print("all meta", all(t.is_meta for t in meta.state_dict().values()))
        # kaiming_normal_ / normal_ initialisation really ran on the real one
        conv = real.backbone.body["0"][0].weight
        head = real.roi_heads.box_predictor.cls_score.weight
        print("drawn", bool(conv.std() > 0), bool(head.std() > 0))
        """, tmp_path)
    assert out.split("\n")[:3] == ["same shapes True", "all meta True", "drawn True True"]


def test_roi_align_and_a_later_real_dynamo_behave_as_without_the_stand_ins(tmp_path):
    out = run_fresh("""
        import sys
        import torch
        from trapgui.ml.torchvision_import import import_torchvision
        import_torchvision()
        module = sys.modules["torchvision.ops.roi_align"]
        from torchvision.ops import roi_align
        image = torch.arange(2 * 3 * 9 * 11, dtype=torch.float64).reshape(2, 3, 9, 11)
        rois = torch.tensor([[0, 0.5, 1.0, 7.5, 6.0], [1, 2.0, 0.0, 10.0, 8.5]], dtype=torch.float64)
        compiled_op = roi_align(image, rois, output_size=(4, 5), sampling_ratio=2, aligned=True)
        eager_reference = module._roi_align.__wrapped__(image, rois, 1.0, 4, 5, 2, True)
        # float64, values below 600, a few dozen operations each: far inside 1e-9
        print("same", torch.allclose(compiled_op, eager_reference, rtol=0, atol=1e-9))
        print("dynamo before", "torch._dynamo" in sys.modules)
        import torch._dynamo
        import torch._dynamo.utils
        print("real", hasattr(torch._dynamo, "config"), hasattr(torch._dynamo, "optimize"))
        for device in ("cpu", "meta"):
            print(device, module.is_compile_supported(device) == torch._dynamo.utils.is_compile_supported(device))
        """, tmp_path)
    assert out.split("\n")[:5] == ["same True", "dynamo before False", "real True True",
                                   "cpu True", "meta True"]


def test_a_module_that_wants_more_of_dynamo_is_imported_with_the_real_one(tmp_path):
    (tmp_path / "wants_more.py").write_text(
        "from torch._dynamo.utils import is_compile_supported, counters\n"
        "import torch\nCONFIG = torch._dynamo.config\n")
    (tmp_path / "uses_attribute.py").write_text(
        "import torch\nCOMPILING = torch._dynamo.is_compiling()\n")
    out = run_fresh("""
        import sys
        from trapgui.ml.torchvision_import import import_without_dynamo
        first = import_without_dynamo("wants_more")
        print(first.CONFIG.__name__, first.is_compile_supported.__module__)
        second = import_without_dynamo("uses_attribute")
        print(second.COMPILING)
        """, tmp_path)
    assert out.split("\n")[:2] == ["torch._dynamo.config torch._dynamo.utils", "False"]
