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


def test_what_tensorflow_printed_is_shown_when_its_import_fails(tmp_path):
    # A stand-in TensorFlow that writes to file descriptor 2, as the native library does, then fails.
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\nos.write(2, b'native line before the failure\\n')\nraise ImportError('no libtensorflow here')\n")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path)] + [p for p in [env.get("PYTHONPATH")] if p])
    done = subprocess.run([sys.executable, "-m", "keras_msreid.cli", "summary"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode != 0
    assert done.stderr.count("native line before the failure") == 1
    assert "no libtensorflow here" in done.stderr


def test_summary_builds_the_model_its_flags_describe(capsys):
    from keras_msreid.cli import main

    def per_pair(*flags):
        assert main(["summary", *flags]) == 0
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("multiply-adds per pair")]
        return float(lines[0].split()[-2]) if lines else None

    default, three_levels = per_pair(), per_pair("--levels", "low", "mid", "high")
    assert default is not None and three_levels > 2 * default
    assert per_pair("--levels") is None  # embedding only: nothing is scored per pair
    assert per_pair("--stn") == default  # the STN is per image: the pair work is the same
