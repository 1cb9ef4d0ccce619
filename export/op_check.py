"""The operators of a TFLite flatbuffer, and the check that all are LiteRT builtins.

Reads the model's operator codes with the flatbuffer schema that ships with
`ai_edge_litert`, so it works on models no interpreter could load (a Flex op
needs the Flex delegate, a custom op its own kernel). TensorFlow-free.

Example:

>>> ops = list_ops(open("extractor_int8.tflite", "rb").read())
>>> ops[:3]
['ADD', 'BATCH_MATMUL', 'CONCATENATION']
>>> check_builtin_ops(model_bytes, "extractor_int8.tflite")   # raises UnsupportedOpsError
"""

from ai_edge_litert import schema_py_generated as schema

from keras_msreid.errors import UserError

_CUSTOM = schema.BuiltinOperator.CUSTOM
_BUILTIN_NAMES = {
    code: name
    for name, code in vars(schema.BuiltinOperator).items()
    if not name.startswith("_") and code != _CUSTOM
}
# The converter names a TensorFlow op it could not lower "Flex" + the op's name.
_FLEX_PREFIX = "Flex"


class UnsupportedOpsError(UserError):
    """A model uses ops outside TFLITE_BUILTINS (Flex or custom ops)."""


def _operator_names(model_bytes):
    """One name per operator code of the model: builtin name, or the custom code."""
    model = schema.Model.GetRootAs(model_bytes, 0)
    names = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        # Builtin codes above 127 live in `BuiltinCode`; older files in the
        # deprecated int8 field. The larger of the two is the real one.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == _CUSTOM:
            custom = code.CustomCode()
            names.append(custom.decode("utf-8") if custom else "CUSTOM (no custom code)")
        else:
            names.append(_BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    return names


def list_ops(model_bytes):
    """Sorted names of the operators used by a TFLite model.

    Builtins are named as in the schema (`CONV_2D`); Flex ops keep their
    `Flex<TensorFlowOp>` custom code and other custom ops their own code.
    """
    model = schema.Model.GetRootAs(model_bytes, 0)
    names = _operator_names(model_bytes)
    used = set()
    for subgraph_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(subgraph_index)
        for op_index in range(subgraph.OperatorsLength()):
            used.add(names[subgraph.Operators(op_index).OpcodeIndex()])
    return sorted(used)


def non_builtin_ops(model_bytes):
    """The ops of a model that are not builtins, described for an error message."""
    builtin = set(_BUILTIN_NAMES.values())
    described = []
    for name in list_ops(model_bytes):
        if name in builtin:
            continue
        if name.startswith(_FLEX_PREFIX):
            described.append(f"{name[len(_FLEX_PREFIX):]} (Flex op: TensorFlow kernel, needs the Flex delegate)")
        else:
            described.append(f"{name} (custom op: no LiteRT kernel)")
    return described


def check_builtin_ops(model_bytes, what):
    """Raises `UnsupportedOpsError` naming every op of `what` outside TFLITE_BUILTINS."""
    unsupported = non_builtin_ops(model_bytes)
    if unsupported:
        raise UnsupportedOpsError(
            f"{what} needs ops outside TFLITE_BUILTINS: {', '.join(unsupported)}. "
            "Rewrite the layer that uses them with builtin ops (see export/README.md)."
        )
