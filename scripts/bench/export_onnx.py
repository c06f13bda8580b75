"""Reference ONNX exporter for Darknet cfg + .weights (onnx.helper only, no torch).

Usage: export_onnx.py CFG WEIGHTS SIZE OUT.onnx
Outputs = the raw head-conv outputs feeding each [yolo] (no decode), input "data" 1x3xSIZExSIZE.
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import darknet

OPSET = 17


class Graph:
    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def layer_node(g, i, L, names, params):
    src = names[L.inputs[0]] if L.inputs[0] >= 0 else "data"
    t = f"l{i}"
    if L.kind == "convolutional":
        w, b = params[i]
        k, s, p = w.shape[2], int(L.opts.get("stride", 1)), darknet.conv_pad(L)
        out = g.node("Conv", [src, g.const(f"{t}.w", w), g.const(f"{t}.b", b)], f"{t}.conv",
                     kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        act = L.opts.get("activation", "linear")
        if act == "leaky":
            return g.node("LeakyRelu", [out], f"{t}.leaky", alpha=0.1)
        if act != "linear":
            raise ValueError(f"layer {i} (line {L.line}): activation {act!r} not exported")
        return out
    if L.kind == "maxpool":
        k, s, pb, pe = darknet.maxpool_pads(L)
        return g.node("MaxPool", [src], f"{t}.pool", kernel_shape=[k, k], strides=[s, s],
                      pads=[pb, pb, pe, pe])
    if L.kind == "route":
        ins = [names[j] for j in L.inputs]
        return ins[0] if len(ins) == 1 else g.node("Concat", ins, f"{t}.route", axis=1)
    if L.kind == "shortcut":
        return g.node("Add", [names[L.inputs[0]], names[L.inputs[1]]], f"{t}.add")
    if L.kind == "upsample":
        s = float(L.opts.get("stride", 2))
        scales = g.const(f"{t}.scales", np.array([1, 1, s, s], dtype=np.float32))
        return g.node("Resize", [src, "", scales], f"{t}.up", mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    if L.kind == "yolo":
        return src
    raise ValueError(f"layer {i} (line {L.line}): [{L.kind}] not exported")


def build_model(cfg, weights, size):
    _net, layers = darknet.parse_cfg(cfg, size)
    params = darknet.read_weights(weights, layers)
    g, names = Graph(), []
    for i, L in enumerate(layers):
        names.append(layer_node(g, i, L, names, params))
    heads = darknet.yolo_inputs(layers)
    outputs = []
    for n, j in enumerate(heads):
        c, h, w = layers[j].out_shape
        g.node("Identity", [names[j]], f"head{n}")
        outputs.append(helper.make_tensor_value_info(f"head{n}", TensorProto.FLOAT, [1, c, h, w]))
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])
    graph = helper.make_graph(g.nodes, "darknet", [inp], outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="kestrel-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, heads


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    cfg, weights, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    model, heads = build_model(cfg, weights, size)
    onnx.save(model, out)
    print(f"export: {out} ({len(model.graph.node)} nodes, heads from layers {heads})")


if __name__ == "__main__":
    main()
