"""KL303 positive: a Python `if` on a tensor's value inside a custom layer's call."""
import numpy as np
import keras
from keras import layers, ops

keras.utils.set_random_seed(0)


class Gate(layers.Layer):
    def call(self, x):
        if ops.mean(x) > 0:
            return x * 2.0
        return -x


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8)
        self.gate = Gate()
        self.out = layers.Dense(1)

    def call(self, x):
        return self.out(self.gate(self.hidden(x)))


x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = Net()
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
