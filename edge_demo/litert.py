"""A TFLite model run by the LiteRT interpreter, with tensors found by name: the project's one runtime.

`ai_edge_litert` is the maintained runtime; `tflite_runtime` is used where that is
what is installed. Neither imports TensorFlow. Inputs are quantized and outputs
dequantized here with each tensor's own scale and zero point, so callers always
pass and get float32 (or raw uint8 pixels for an image input). `export/` converts,
checks and validates through this module too, so the demo on a Pi and the
validation on a desktop quantize the same way.

Example:

>>> extractor = TFLiteModel("models/extractor_int8.tflite", num_threads=2)
>>> outputs = extractor(images=crops)          # crops: (N, H, W, 3) uint8 RGB
>>> outputs["embedding"].shape, outputs["embedding"].dtype
((N, 128), dtype('float32'))
"""

import os

import numpy as np

from .native import first_line, native_stderr

# The signature `msreid export` gives its models.
SIGNATURE_KEY = "serving_default"


def load_interpreter_class():
    """The LiteRT `Interpreter` class: ai_edge_litert first, then tflite_runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ImportError(
                "the edge demo needs a TFLite interpreter: `pip install ai-edge-litert` "
                "(or `pip install tflite-runtime` where no ai-edge-litert wheel exists)"
            ) from None
    return Interpreter


def quantize(values, dtype, scale, zero_point):
    """Float values -> the integer dtype of a quantized tensor (round, then saturate)."""
    info = np.iinfo(dtype)
    quantized = np.round(np.asarray(values, np.float32) / np.float32(scale)) + zero_point
    return np.clip(quantized, info.min, info.max).astype(dtype)


def dequantize(values, scale, zero_point):
    """Integer tensor values -> float32 (`scale * (q - zero_point)`)."""
    return (np.asarray(values, np.float32) - np.float32(zero_point)) * np.float32(scale)


def describe_tensor(name, details):
    """A tensor as export metadata describes it: `shape` with -1 on resizable axes (the
    batch), and `scale` / `zero_point` None for a float tensor."""
    quantization = tensor_quantization(details)
    return {
        "name": name,
        "shape": [int(size) for size in details["shape_signature"]],
        "dtype": np.dtype(details["dtype"]).name,
        "scale": quantization[0] if quantization else None,
        "zero_point": quantization[1] if quantization else None,
    }


def tensor_quantization(details):
    """(scale, zero_point) of a per-tensor quantized tensor, or None for a float one."""
    params = details.get("quantization_parameters", {})
    scales = np.asarray(params.get("scales", []))
    if scales.size == 0:
        return None
    if scales.size > 1:
        raise ValueError(f"tensor {details['name']} is quantized per axis; only per-tensor is supported")
    return float(scales[0]), int(np.asarray(params["zero_points"])[0])


class TFLiteModel:
    """One TFLite model; call it with named float/uint8 arrays.

    Tensors are named by the model's signature (the exported extractor and
    scorer have one); a model without a signature, like the TF1-era SSD
    detectors, is addressed by its tensor names. The batch (first) dimension of
    every input follows the arrays passed in: input tensors are resized when
    their shape changes. `inputs` and `outputs` describe each tensor
    (`describe_tensor`).

    Args:
        model: the `.tflite` file, or its bytes.
        num_threads: interpreter threads (None: the runtime's default).
    """

    def __init__(self, model, num_threads=None):
        from_bytes = isinstance(model, (bytes, bytearray))
        if not from_bytes and not os.path.isfile(model):
            raise FileNotFoundError(f"TFLite model {model} does not exist")
        interpreter_class = load_interpreter_class()
        self.path = "(given as bytes)" if from_bytes else os.fspath(model)
        source = {"model_content": bytes(model)} if from_bytes else {"model_path": self.path}
        try:
            # The runtime prints its own lines (the XNNPACK notice, flatbuffer errors) on descriptor 2.
            with native_stderr() as printed:
                self._load(interpreter_class, source, num_threads)
        except (ValueError, RuntimeError) as error:
            reason = " ".join(str(error).split()) or first_line(printed.text)
            raise ValueError(f"cannot load TFLite model {self.path}: {reason}") from None
        self.inputs = {name: describe_tensor(name, details) for name, details in self.input_details.items()}
        # Inputs whose batch is fixed (the scorer's query), checked on every call.
        self._fixed_batches = {name: tensor["shape"][0] for name, tensor in self.inputs.items()
                               if tensor["shape"] and tensor["shape"][0] > 0}
        self.outputs = {name: describe_tensor(name, details) for name, details in self.output_details.items()}

    def _load(self, interpreter_class, source, num_threads):
        self.interpreter = interpreter_class(**source, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if len(signatures) > 1:
            raise ValueError(f"it has several signatures {sorted(signatures)}; the demo runs one")
        self.interpreter.allocate_tensors()
        if signatures:
            self.runner = self.interpreter.get_signature_runner(next(iter(signatures)))
            self.input_details = self.runner.get_input_details()
            self.output_details = self.runner.get_output_details()
        else:
            self.runner = self._run_by_tensor_names
            self.input_details = {d["name"]: d for d in self.interpreter.get_input_details()}
            self.output_details = {d["name"]: d for d in self.interpreter.get_output_details()}
            self._shapes = {name: tuple(d["shape"]) for name, d in self.input_details.items()}

    @property
    def input_names(self):
        return sorted(self.input_details)

    @property
    def output_names(self):
        return sorted(self.output_details)

    def prepare_input(self, name, value):
        """`value` as input `name` stores it: checked for shape, quantized if the tensor is."""
        details = self.input_details[name]
        dtype = np.dtype(details["dtype"])
        value = np.asarray(value)
        expected = tuple(details["shape_signature"][1:])
        if value.shape[1:] != expected:
            raise ValueError(f"input {name} of {self.path} takes (N, {', '.join(map(str, expected))}), "
                             f"got {value.shape}")
        if dtype == np.float32:
            return np.ascontiguousarray(value, np.float32)
        quantization = tensor_quantization(details)
        if quantization is None:
            return np.ascontiguousarray(value, dtype)
        return quantize(value, dtype, *quantization)

    def _run_by_tensor_names(self, **inputs):
        resized = False
        for name, value in inputs.items():
            if self._shapes[name] != value.shape:
                self.interpreter.resize_tensor_input(self.input_details[name]["index"], value.shape)
                self._shapes[name] = value.shape
                resized = True
        if resized:
            self.interpreter.allocate_tensors()
        for name, value in inputs.items():
            self.interpreter.set_tensor(self.input_details[name]["index"], value)
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(details["index"]) for name, details in self.output_details.items()}

    def __call__(self, **inputs):
        """Runs the model; returns {output name: float32 array}."""
        self._check_names(inputs)
        prepared = {name: self.prepare_input(name, value) for name, value in inputs.items()}
        return self.real_outputs(self.runner(**prepared))

    def real_outputs(self, raw):
        """Raw outputs (as `run_quantized` gives them) as float32 real values."""
        outputs = {}
        for name, value in raw.items():
            quantization = tensor_quantization(self.output_details[name])
            if quantization is not None and np.issubdtype(value.dtype, np.integer):
                outputs[name] = dequantize(value, *quantization)
            else:
                outputs[name] = np.asarray(value, np.float32)
        return outputs

    def run_quantized(self, **tensors):
        """Runs the model on tensors already in their stored dtypes; returns the raw outputs."""
        self._check_names(tensors)
        for name, value in tensors.items():
            if value.dtype != np.dtype(self.inputs[name]["dtype"]):
                raise TypeError(f"input {name!r} of {self.path} must be {self.inputs[name]['dtype']}, "
                                f"got {value.dtype}")
        return self.runner(**tensors)

    def _check_names(self, given):
        """Every input given by name, none unknown, and a fixed batch (the scorer's query) kept."""
        missing = sorted(set(self.input_details) - set(given))
        unknown = sorted(set(given) - set(self.input_details))
        if missing or unknown:
            raise ValueError(f"{self.path} takes inputs {self.input_names}: missing {missing}, unknown {unknown}")
        for name, batch in self._fixed_batches.items():
            if np.shape(given[name])[:1] != (batch,):
                raise ValueError(f"input {name} of {self.path} takes a batch of {batch}, got shape "
                                 f"{np.shape(given[name])}")
