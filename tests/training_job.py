"""A tiny training run executed in a subprocess by tests/test_training.py.

Usage: python tests/training_job.py DATASET_ROOT RUN_DIR [--kill-at-step N] [--mirrored] [--no-evaluation]
With --kill-at-step the process SIGKILLs itself after that optimizer step, the way
a power cut or an out-of-memory killer would end it. With --mirrored it trains under
`MirroredStrategy` over two logical CPU devices.
"""

import argparse
import os
import signal

import keras
import tensorflow as tf

from keras_msreid.training.config import TrainConfig
from keras_msreid.training.trainer import train


class KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def tiny_config(root, out_dir):
    return TrainConfig(
        dataset="folder", root=root, out_dir=out_dir, image_size=(64, 32),
        model={"patch_size": (3, 2), "widths": (8, 16, 16, 32), "depths": (1, 1, 1), "embedding_dim": 16,
               "levels": ("mid", "high")},
        p=4, k=2, epochs=3, steps_per_epoch=4, warmup_epochs=1, checkpoint_every_steps=2,
        learning_rate=3e-3, check_files=False,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out_dir")
    parser.add_argument("--kill-at-step", type=int)
    parser.add_argument("--mirrored", action="store_true")
    parser.add_argument("--no-evaluation", action="store_true")
    args = parser.parse_args()
    config = tiny_config(args.root, args.out_dir)
    config.final_evaluation = not args.no_evaluation
    if args.mirrored:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        config.strategy = "mirrored"
        config.epochs = 1
    tf.config.experimental.enable_op_determinism()
    callbacks = [KillAt(args.kill_at_step)] if args.kill_at_step else []
    model, _ = train(config, extra_callbacks=callbacks, verbose=0)
    print("replicas", model.distribute_strategy.num_replicas_in_sync)
