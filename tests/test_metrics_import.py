"""keras_msreid.metrics must stay TensorFlow-free: the edge demo reuses it on a Raspberry Pi."""

import subprocess
import sys


def test_importing_metrics_does_not_import_tensorflow_or_keras():
    code = (
        "import sys, keras_msreid.metrics\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
