"""What a TensorFlow command of `msreid` prints when all goes well: its output, nothing else."""

import os
import subprocess
import sys


def test_a_command_prints_no_tensorflow_start_up_lines():
    # The C++ lines ("All log messages before absl::InitializeLog()", the CUDA probe)
    # come before any log level applies; the CLI holds stderr back while they do.
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "keras_msreid.cli", "summary"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "multiply-adds per image" in done.stdout
    assert done.stderr.strip() == ""
