"""KL304 positive in training mode: Python's random under `if training:` in call is drawn
once when fit traces the step, then the same noise is added at every step."""
import random

import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)


class TrainNoise(layers.Layer):
    def call(self, x, training=None):
        if training:
            return x + random.gauss(0.0, 0.1)
        return x


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), layers.Dense(8), TrainNoise(), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=2, verbose=0)
