import os
import subprocess
import sys

import numpy as np

from keras_msreid.edge_demo.litert import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_device_side_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import export, export.op_check, export.float_ops, export.threshold, keras_msreid.utils.atomic\n"
        "import edge_demo.litert, edge_demo.reid_models\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if m.startswith('tensorflow'))[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_quantize_rounds_to_the_nearest_step_and_saturates():
    values = np.array([0.0, 0.74, 0.76, -1.0, 100.0, -100.0], np.float32)
    quantized = quantize(values, np.int8, 0.5, -3)
    assert quantized.dtype == np.int8
    np.testing.assert_array_equal(quantized, [-3, -2, -1, -5, 127, -128])
    np.testing.assert_allclose(dequantize(quantized[:4], 0.5, -3), [0.0, 0.5, 1.0, -1.0])


def test_uint8_pixels_pass_exactly_through_the_pinned_image_input():
    # The int8 extractor's image input is calibrated on [0, 255]: its scale is 1 up to float error.
    pixels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(quantize(pixels, np.uint8, 0.99999678, 0), pixels)
    np.testing.assert_array_equal(quantize(pixels, np.int8, 1.0000001, -128).astype(int), pixels.astype(int) - 128)
