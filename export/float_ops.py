"""The ops an int8 export keeps in float, found in the float32 model's graph.

Parts of MSReID that lose too much in int8 (measured on trained models:
export/README.md, docs/RESULTS.md):

- `stn_interpolation_nodes`: the STN's bilinear weights. Sample positions are
  computed in cells (0 to 39 on the low level); in int8 steps of about 0.16 cell
  they flip `floor`, and the fraction between cells, calibrated near 0 at the
  native-scale prior, saturates. Patches came out with a mean error of 0.13 on
  unit vectors. In float they cost a few hundred values per image.
- `pooled_head_nodes`: the extractor's head after global pooling, from the pooled
  features to the embedding (dense, batch norm, L2 normalisation). With a weakly
  trained model whose embeddings all lie within a cosine of 0.98 of each other, the
  int8 head cost 8.6 points of rank-1 (1.7 in float). In float it costs about 30 k
  multiply-adds per image.
- `computed_nodes`: all of the scorer but its inputs. Its gallery features stay
  int8 (a quarter of float's size, stored once per image) and are dequantized as
  the scorer's first ops. Computed in int8, every product and sum of its
  correlations is requantized, its sigmoid has 256 levels, and the query's patch,
  a convolution kernel computed at run time, gets a zero point that LiteRT's int8
  convolutions ignore (they assume symmetric weights). On the converged default
  model, one query against 100 gallery rows on an AVX2 CPU: int8 compute agreed
  with float with a correlation of 0.986 and flipped 0.81 % of the decisions at
  the match threshold in 2.12 ms; float compute on the int8 inputs 0.99976 and
  0.18 % in 1.55 ms.

All are found by graph structure, not op names: the weights are the first
operand of every BATCH_MATMUL of the extractor (the STN's separable sampling is
its only matrix product), traced back to the theta outputs; a head is every op
between a named output and the MEAN (global pooling) before it. TensorFlow-free.

Example:

>>> nodes = float_islands("extractor", graph)  # tensor names: the STN weights and the embedding head
>>> nodes = float_islands("scorer", graph)     # every tensor an op of the scorer computes
"""

from ai_edge_litert import schema_py_generated as schema

_BATCH_MATMUL = schema.BuiltinOperator.BATCH_MATMUL
_MEAN = schema.BuiltinOperator.MEAN


def float_islands(role, model_bytes):
    """Names of the tensors an int8 `role` ("extractor" or "scorer") keeps in float."""
    if role == "extractor":
        return stn_interpolation_nodes(model_bytes) + pooled_head_nodes(model_bytes, "embedding")
    if role == "scorer":
        return computed_nodes(model_bytes)
    raise ValueError(f"role must be 'extractor' or 'scorer', got {role!r}")


def _graph(model_bytes):
    """Per op `(code, inputs, outputs)`; tensor names; the model's output and input tensors."""
    model = schema.Model.GetRootAs(model_bytes, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"expected a model with one subgraph, got {model.SubgraphsLength()}")
    subgraph = model.Subgraphs(0)
    codes = [
        max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(model.OperatorCodesLength())
    ]
    ops = []
    for index in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(index)
        ops.append((codes[op.OpcodeIndex()], list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())))
    names = [subgraph.Tensors(i).Name().decode("utf-8") for i in range(subgraph.TensorsLength())]
    return ops, names, set(subgraph.OutputsAsNumpy().tolist()), set(subgraph.InputsAsNumpy().tolist())


def stn_interpolation_nodes(model_bytes):
    """Names of the tensors computing the STN sampling weights from theta."""
    ops, names, outputs, inputs = _graph(model_bytes)
    producer = {tensor: index for index, (_, _, produced) in enumerate(ops) for tensor in produced}
    pending = [operands[0] for code, operands, _ in ops if code == _BATCH_MATMUL]
    kept = set()
    while pending:
        tensor = pending.pop()
        if tensor in inputs:
            raise ValueError(
                f"the STN sampling weights depend on the image through {names[tensor]!r}: "
                "the graph is not the one float_ops expects"
            )
        # Stop at theta (a model output) and at constants.
        if tensor in kept or tensor in outputs or tensor not in producer:
            continue
        kept.add(tensor)
        pending.extend(t for t in ops[producer[tensor]][1] if t >= 0)
    return sorted(names[t] for t in kept)


def computed_nodes(model_bytes):
    """Names of every tensor an op of the model computes (all but its inputs and constants)."""
    ops, names, _, _ = _graph(model_bytes)
    return sorted({names[tensor] for _, _, produced in ops for tensor in produced})


def pooled_head_nodes(model_bytes, output_name):
    """Names of the tensors from the global pooling (MEAN) before `output_name` to it.

    `output_name` is a signature output (e.g. "embedding", "score"); the walk goes
    back from it through every producer and stops at MEAN ops (their outputs kept).
    """
    ops, names, _, _ = _graph(model_bytes)
    model = schema.Model.GetRootAs(model_bytes, 0)
    signature = model.SignatureDefs(0)
    targets = [
        signature.Outputs(i).TensorIndex()
        for i in range(signature.OutputsLength())
        if signature.Outputs(i).Name().decode("utf-8") == output_name
    ]
    if not targets:
        raise ValueError(f"the model has no output named {output_name!r}")
    producer = {tensor: index for index, (_, _, produced) in enumerate(ops) for tensor in produced}
    pending, kept = list(targets), set()
    while pending:
        tensor = pending.pop()
        if tensor in kept or tensor not in producer:
            continue
        kept.add(tensor)
        code, operands, _ = ops[producer[tensor]]
        if code != _MEAN:
            pending.extend(t for t in operands if t >= 0)
    if not any(ops[producer[t]][0] == _MEAN for t in kept):
        raise ValueError(f"no global pooling (MEAN) before {output_name!r}")
    return sorted(names[t] for t in kept)
