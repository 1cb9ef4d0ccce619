import os
import subprocess
import sys

import numpy as np

from export.runtime import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_device_side_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import export, export.runtime, export.op_check, export.float_ops, export.threshold, keras_msreid.utils.atomic\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if m.startswith('tensorflow'))[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_quantize_rounds_to_the_nearest_step_and_saturates():
    tensor = {"dtype": "int8", "scale": 0.5, "zero_point": -3}
    values = np.array([0.0, 0.74, 0.76, -1.0, 100.0, -100.0], np.float32)
    quantized = quantize(values, tensor)
    assert quantized.dtype == np.int8
    np.testing.assert_array_equal(quantized, [-3, -2, -1, -5, 127, -128])
    np.testing.assert_allclose(dequantize(quantized[:4], tensor), [0.0, 0.5, 1.0, -1.0])


def test_uint8_pixels_pass_exactly_through_the_pinned_image_input():
    pixels = np.arange(256, dtype=np.uint8)
    uint8_input = {"dtype": "uint8", "scale": 0.99999678, "zero_point": 0}
    int8_input = {"dtype": "int8", "scale": 1.0000001, "zero_point": -128}
    np.testing.assert_array_equal(quantize(pixels, uint8_input), pixels)
    np.testing.assert_array_equal(quantize(pixels, int8_input).astype(int), pixels.astype(int) - 128)


def test_float_tensors_are_only_cast():
    tensor = {"dtype": "float32", "scale": None, "zero_point": None}
    values = np.array([1.5, -2.25], np.float64)
    assert quantize(values, tensor).dtype == np.float32
    np.testing.assert_array_equal(dequantize(values, tensor), values)
