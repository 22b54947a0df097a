"""KL104 positive: seeded, but a parallel map with deterministic=False delivers the samples in
a different order from run to run; seeds alone cannot make two runs equal."""
import os
import time

import numpy as np
import tensorflow as tf
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)


def read(t):  # stands for reading from disk: the latency varies from call to call
    time.sleep(0.001 * (1 + os.urandom(1)[0] / 64))
    return t


def load(xb, yb):  # parallel calls race, so batches arrive out of order
    xb = tf.py_function(read, [xb], tf.float32)
    return tf.ensure_shape(xb, (None, 4)), yb


ds = (tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
      .map(load, num_parallel_calls=8, deterministic=False))
model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
model.fit(ds, epochs=1, verbose=0)
