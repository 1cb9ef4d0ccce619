"""What an installed keras_msreid puts on the import path: nothing generic at the top level."""

import os
import pathlib
import subprocess
import sys

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent


def test_export_and_edge_demo_are_installed_under_the_projects_name(tmp_path):
    # Run outside the repository, so only what is installed can be imported.
    script = (
        "import importlib.util, pathlib\n"
        "import keras_msreid.export.threshold, keras_msreid.edge_demo.reid_models\n"
        "print(pathlib.Path(keras_msreid.export.threshold.__file__).parent)\n"
        "print(pathlib.Path(keras_msreid.edge_demo.reid_models.__file__).parent)\n"
        "print(importlib.util.find_spec('export'), importlib.util.find_spec('edge_demo'))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    export_dir, edge_dir, generic = result.stdout.splitlines()
    assert generic == "None None"
    assert pathlib.Path(export_dir).name == "export" and pathlib.Path(edge_dir).name == "edge_demo"
