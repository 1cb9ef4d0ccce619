"""The synthetic data and the baselines stay TensorFlow-free: the edge demo's tests use them without TF."""

import subprocess
import sys


def test_importing_synthetic_and_baselines_does_not_import_tensorflow_or_keras():
    code = (
        "import sys, keras_msreid.synthetic, keras_msreid.baselines, keras_msreid.cli.synth\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
