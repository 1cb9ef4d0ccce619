"""One worker of a tiny `MultiWorkerMirroredStrategy` training, run by tests/test_multi_worker.py.

Usage: TF_CONFIG=... python tests/multi_worker_job.py DATASET_ROOT RUN_DIR WEIGHTS_NPZ
           [--strategy multi_worker|default] [--epochs N] [--step-delay SECONDS]

The test sets TF_CONFIG (the cluster and this worker's task) in the environment.
After training, the worker writes its final weights and optimizer state to WEIGHTS_NPZ (outside the run
folder) so that the test can compare the workers. `--step-delay` sleeps after each
step, to give the test time to kill a worker mid-run.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from training_job import tiny_config  # noqa: E402

from keras_msreid.training.trainer import train  # noqa: E402


class Delay(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out_dir")
    parser.add_argument("weights_out")
    parser.add_argument("--strategy", default="multi_worker")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--step-delay", type=float, default=0.0)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    config = tiny_config(args.root, args.out_dir)
    config.final_evaluation = False
    config.strategy = args.strategy
    config.epochs = args.epochs
    callbacks = [Delay(args.step_delay)] if args.step_delay else []
    model, _ = train(config, extra_callbacks=callbacks, verbose=0)
    # Model weights, then optimizer state, in creation order (the same on every worker).
    variables = [("model", w) for w in model.weights] + [("optimizer", w) for w in model.optimizer.variables]
    np.savez(
        args.weights_out,
        names=np.array([f"{kind}:{w.path}" for kind, w in variables]),
        trainable=np.array([bool(w.trainable) for _, w in variables]),
        **{f"v{i:04d}": keras.ops.convert_to_numpy(w.value) for i, (_, w) in enumerate(variables)},
    )
    print("replicas", model.distribute_strategy.num_replicas_in_sync, "step", int(model.optimizer.iterations.numpy()))
