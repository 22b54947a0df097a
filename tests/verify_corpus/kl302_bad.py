"""KL302 positive: .numpy() on a tensor in call works eagerly and fails under fit/predict."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Clip(layers.Layer):
    def call(self, x):
        limit = float(keras.ops.max(keras.ops.abs(x)).numpy())
        return keras.ops.clip(x, -0.5 * limit, 0.5 * limit)


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.clip, self.out = layers.Dense(8), Clip(), layers.Dense(1)

    def call(self, x):
        return self.out(self.clip(self.hidden(x)))


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = Net()
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
