"""KL304 clean twin: keras.random with a SeedGenerator draws anew on every call."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Jitter(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed = keras.random.SeedGenerator(1)

    def call(self, x, training=None):
        return x + keras.random.normal((), stddev=0.1, seed=self.seed)


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8)
        self.jitter = Jitter()
        self.out = layers.Dense(1)

    def call(self, x, training=None):
        return self.out(self.jitter(self.hidden(x)))


x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = Net()
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
