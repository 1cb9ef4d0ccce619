"""`strategy: multi_worker` with two worker processes on this machine (127.0.0.1 ports).

Each worker runs tests/multi_worker_job.py with its own TF_CONFIG and writes its final
weights to an .npz outside the run folder.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_msreid.synthetic import write_market1501

JOB = pathlib.Path(__file__).with_name("multi_worker_job.py")
# Per process; the two workers share 2 cores.
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
TIMEOUT = 150  # seconds for any one wait; a tiny run takes 15 to 40 (on a busy machine)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic"
    write_market1501(root, num_ids=16, num_cameras=2, seed=3)
    return root


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def job_env(tf_config=None):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(THREADS, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def start_workers(root, out_dirs, weights, log_dir, *extra):
    """Starts worker i on out_dirs[i], writing weights[i]; returns the processes."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(out_dirs))]}
    processes = []
    for index, (out_dir, weights_path) in enumerate(zip(out_dirs, weights)):
        # A file, not a pipe: TensorFlow's logging could fill a pipe nobody reads yet.
        log = open(log_dir / f"worker{index}.log", "w")
        env = job_env({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, str(JOB), str(root), str(out_dir), str(weights_path), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        ))
        log.close()
    return processes


def kill_all(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def tail(path, size=3000):
    return pathlib.Path(path).read_text(errors="replace")[-size:]


def test_two_workers_train_in_step_and_only_the_chief_writes(tiny_dataset, tmp_path):
    # The non-chief gets a folder of its own here, so that anything it wrote would
    # show; on a resume the workers share one (see the next test).
    chief_run, other_run = tmp_path / "chief_run", tmp_path / "other_run"
    weights = [tmp_path / "worker0.npz", tmp_path / "worker1.npz"]
    processes = start_workers(tiny_dataset, [chief_run, other_run], weights, tmp_path, "--epochs", "1")
    try:
        codes = [process.wait(timeout=TIMEOUT) for process in processes]
    finally:
        kill_all(processes)
    for index, code in enumerate(codes):
        assert code == 0, tail(tmp_path / f"worker{index}.log")
        assert "replicas 2 step 4" in tail(tmp_path / f"worker{index}.log")

    assert not other_run.exists(), sorted(other_run.rglob("*"))
    assert {path.name for path in chief_run.iterdir()} == {"checkpoint", "config.yaml", "history.csv", "logs", "model.keras"}
    state = json.loads((chief_run / "checkpoint" / "state.json").read_text())
    assert state["global_step"] == 4 and (chief_run / "checkpoint" / state["weights"]).is_file()
    assert "strategy: multi_worker" in (chief_run / "config.yaml").read_text()
    assert [line.split(",")[0] for line in (chief_run / "history.csv").read_text().splitlines()[1:]] == ["0"]
    assert list((chief_run / "logs").rglob("events.out.tfevents.*"))

    first, second = (np.load(path, allow_pickle=False) for path in weights)
    names = list(first["names"])
    assert names == list(second["names"]) and len(names) > 100
    differing = []
    for index, name in enumerate(names):
        a, b = first[f"v{index:04d}"], second[f"v{index:04d}"]
        if first["trainable"][index] or name.startswith("optimizer:"):
            # Gradients are all-reduced: every trained weight and the optimizer state agree.
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=name)
        elif not np.array_equal(a, b):
            differing.append(name)
    # Keras keeps BatchNormalization's moving statistics per replica (aggregation
    # "none"): each worker averages those of its own half of the batch, so they may
    # differ; the chief's are the ones saved. Nothing else may differ.
    assert all(name.endswith(("moving_mean", "moving_variance")) for name in differing), differing

    import keras

    import keras_msreid.models  # noqa: F401  (registers classes for safe loading)

    saved = keras.saving.load_model(chief_run / "model.keras", safe_mode=True)
    model_names = [name for name in names if name.startswith("model:")]
    assert len(saved.weights) == len(model_names)
    for index, weight in enumerate(saved.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight.value), first[f"v{index:04d}"],
                                      err_msg=model_names[index])


def test_a_killed_worker_leaves_a_checkpoint_that_resumes_single_process(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    state_path = run / "checkpoint" / "state.json"
    weights = [tmp_path / "worker0.npz", tmp_path / "worker1.npz"]
    # 2 epochs of 4 steps, a checkpoint every 2 steps; the delay keeps the run going
    # long enough to kill it after its first checkpoint.
    processes = start_workers(tiny_dataset, [run, run], weights, tmp_path, "--epochs", "2", "--step-delay", "0.4")
    chief, other = processes
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state_path.exists():
            for index, process in enumerate(processes):
                assert process.poll() is None, tail(tmp_path / f"worker{index}.log")
            assert time.monotonic() < deadline, "no checkpoint within the timeout"
            time.sleep(0.05)
        other.send_signal(signal.SIGKILL)
        assert other.wait(timeout=30) == -signal.SIGKILL
        # The chief now waits on a collective that will never complete, or fails it.
        try:
            chief.wait(timeout=3)
        except subprocess.TimeoutExpired:
            chief.send_signal(signal.SIGKILL)
            chief.wait(timeout=30)
    finally:
        kill_all(processes)
    assert chief.returncode != 0, tail(tmp_path / "worker0.log")  # it never finished
    assert not weights[0].exists() and not weights[1].exists()
    assert not (run / "model.keras").exists()

    import keras

    from keras_msreid.datasets import build_dataset
    from keras_msreid.training.checkpoint import load_state, restore
    from keras_msreid.training.config import TrainConfig
    from keras_msreid.training.trainer import build_model, compile_model

    state = load_state(run / "checkpoint")  # raises if state.json is damaged or names a missing file
    assert 2 <= state["global_step"] < 8 and state["global_step"] % 2 == 0, state
    config = TrainConfig.load(run / "config.yaml")
    assert config.strategy == "multi_worker"
    model = build_model(config, build_dataset(config.dataset, config.root, check_files=False).num_train_pids)
    compile_model(model, config, config.steps_per_epoch)
    assert restore(model, run / "checkpoint") == state["global_step"]
    del model
    keras.backend.clear_session()

    # The same run, one process, the default strategy (a resumable change).
    log_path = tmp_path / "resume.log"
    with open(log_path, "w") as log:
        resumed = subprocess.run(
            [sys.executable, str(JOB), str(tiny_dataset), str(run), str(tmp_path / "resumed.npz"),
             "--epochs", "2", "--strategy", "default"],
            stdout=log, stderr=subprocess.STDOUT, env=job_env(), timeout=TIMEOUT,
        )
    assert resumed.returncode == 0, tail(log_path)
    assert "replicas 1 step 8" in tail(log_path)
    assert json.loads(state_path.read_text())["global_step"] == 8
    final = keras.saving.load_model(run / "model.keras", safe_mode=True)
    saved = np.load(tmp_path / "resumed.npz", allow_pickle=False)
    for index, weight in enumerate(final.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight.value), saved[f"v{index:04d}"])
