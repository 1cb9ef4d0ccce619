"""scripts/setup_env.sh: every checkout gets its own environment over one shared set of dependencies."""

import os
import pathlib
import shutil
import subprocess

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
MARKER = ".venv-msreid/.made-by-setup-env"  # names the shared environment the checkout's own uses


def shared_dependencies():
    marker = REPOSITORY / MARKER
    return pathlib.Path(marker.read_text().strip()) if marker.is_file() else None


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory):
    """Two copies of this checkout's package sources, as two clones would be."""
    shared = shared_dependencies()
    if shared is None or not (shared / ".complete").is_file():
        pytest.skip("this checkout was not set up by scripts/setup_env.sh")
    copies = []
    for name in ("one", "two"):
        root = tmp_path_factory.mktemp(name)
        for path in ("requirements.txt", "setup.py", "pyproject.toml", "README.md", "scripts/setup_env.sh"):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPOSITORY / path, root / path)
        for package in ("keras_msreid", "export", "edge_demo"):
            shutil.copytree(REPOSITORY / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
        copies.append(root)
    return copies


def setup(root):
    return subprocess.run(["bash", str(root / "scripts" / "setup_env.sh")], capture_output=True, text=True,
                          timeout=600)


def imported_from(environment, cwd):
    script = "import keras_msreid, keras_msreid.edge_demo; print(keras_msreid.__file__)"
    result = subprocess.run([str(pathlib.Path(environment) / "bin" / "python"), "-c", script], cwd=cwd,
                            capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                 if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    return pathlib.Path(result.stdout.strip()).parent.parent


def test_two_checkouts_each_import_their_own_code(checkouts, tmp_path):
    environments = []
    for root in checkouts:
        result = setup(root)
        assert result.returncode == 0, result.stderr
        environments.append(result.stdout.strip().splitlines()[-1])
        assert environments[-1] == str(root / ".venv-msreid")
    for root, environment in zip(checkouts, environments):
        assert imported_from(environment, tmp_path) == root
    # The shared environment holds the dependencies only, no checkout.
    shared = subprocess.run([str(shared_dependencies() / "bin" / "python"), "-c", "import keras_msreid"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert shared.returncode != 0


def test_a_killed_setup_is_built_again_and_a_foreign_folder_is_left_alone(checkouts, tmp_path):
    root = checkouts[0]
    environment = root / ".venv-msreid"
    if not environment.exists():
        assert setup(root).returncode == 0
    (root / MARKER).write_text("incomplete\n")  # as a kill mid-setup leaves it
    result = setup(root)
    assert result.returncode == 0, result.stderr
    assert imported_from(environment, tmp_path) == root

    shutil.rmtree(environment)
    environment.mkdir()
    (environment / "mine.txt").write_text("a user's own folder")
    result = setup(root)
    assert result.returncode == 2
    assert "exists and was not made by scripts/setup_env.sh" in result.stderr and str(environment) in result.stderr
    assert sorted(path.name for path in environment.iterdir()) == ["mine.txt"]
