"""KL305 positive: a layer creates its scale variable inside call: a new variable every call
eagerly, and fit's compiled step cannot create variables after the first trace."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Scale(layers.Layer):
    def call(self, x):
        self.scale = self.add_weight(shape=(x.shape[-1],), initializer="ones", name="scale")
        return x * self.scale


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.scale, self.out = layers.Dense(8), Scale(), layers.Dense(1)

    def call(self, x):
        return self.out(self.scale(self.hidden(x)))


model = Net()
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
