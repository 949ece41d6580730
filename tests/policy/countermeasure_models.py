"""Small ONNX models in AASIST's export format, for the countermeasure path: input
``[batch, 64600]`` float32 waveform, outputs ``last_hidden [batch, 160]`` then ``output
[batch, 2]`` logits with the bona fide class second (clovaai/aasist ``models/AASIST.py`` returns
``last_hidden, output``; ``main.py`` scores ``output[:, 1]``).

The stand-in's "bona fide" logit falls with the window's mean absolute amplitude, so a test
controls its verdict with the loudness of what it feeds or with the threshold.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# bona fide logit = 1 - 20 * mean|x|; a sine of amplitude a has mean|x| = 2a/pi, so a = 0.02
# scores 0.745 and a = 0.1 scores -0.27.
SLOPE, OFFSET = 20.0, 1.0


def build_model(path: Path, *, samples: int | str = "samples", classes: int = 2) -> str:
    """An AASIST-format ONNX file; returns its sha256."""
    waveform = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", samples])
    hidden = helper.make_tensor_value_info("last_hidden", TensorProto.FLOAT, ["batch", 160])
    logits = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", classes])
    weights = np.array([[SLOPE, -SLOPE] + [0.0] * (classes - 2)], dtype=np.float32)
    bias = np.array([-OFFSET, OFFSET] + [0.0] * (classes - 2), dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Abs", ["input"], ["magnitude"]),
            helper.make_node("ReduceMean", ["magnitude", "axes"], ["level"], keepdims=1),
            helper.make_node("MatMul", ["level", "weights"], ["scaled"]),
            helper.make_node("Add", ["scaled", "bias"], ["output"]),
            helper.make_node("MatMul", ["level", "spread"], ["last_hidden"]),
        ],
        "aasist_stand_in",
        [waveform],
        [hidden, logits],
        initializer=[
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.ones((1, 160), dtype=np.float32), "spread"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
