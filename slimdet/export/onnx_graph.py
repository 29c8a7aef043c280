"""Repairs of ONNX graphs exported from Detectron2 models that ONNX Runtime would refuse.

Detectron2 scripts some functions even while tracing (``torch.jit.script_if_tracing``), which
the exporter turns into ``If`` nodes. ``paste_masks_in_image`` returns an empty ``uint8`` tensor
when there are no detections and a ``bool`` one otherwise; ONNX requires both branches of an
``If`` to have one element type, and ONNX Runtime rejects the file ("Mismatched tensor element
type: inferred=bool declared=uint8"). Casting the odd branch's output is exact: the branch that
differs only ever holds an empty tensor.
"""
from __future__ import annotations

__all__ = ["align_if_branch_types"]


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx package: pip install 'slimdet[onnx]' "
                          "(onnx<1.18 keeps numpy<2)") from e
    return onnx


def _align(graph, onnx) -> int:
    """Cast, in every ``If`` of ``graph`` and its subgraphs, each ``then`` output whose element
    type differs from the ``else`` output's to the ``else`` type; return how many."""
    fixed = 0
    for node in graph.node:
        branches = {a.name: a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH}
        for sub in branches.values():
            fixed += _align(sub, onnx)
        if node.op_type != "If":
            continue
        then, other = branches["then_branch"], branches["else_branch"]
        for out, ref in zip(then.output, other.output):
            have, want = out.type.tensor_type.elem_type, ref.type.tensor_type.elem_type
            if have and want and have != want:
                cast = out.name + "_as_else"
                then.node.append(onnx.helper.make_node("Cast", [out.name], [cast], to=want))
                out.name = cast
                out.type.tensor_type.elem_type = want
                fixed += 1
    return fixed


def align_if_branch_types(path: str) -> int:
    """Rewrite the ONNX file at ``path`` with the ``If`` branches' output types aligned and
    check it; return the number of casts added."""
    onnx = _onnx()
    model = onnx.load(path)
    fixed = _align(model.graph, onnx)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return fixed
