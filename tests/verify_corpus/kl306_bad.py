"""KL306 positive: a Model subclass that takes a layer as a constructor argument and has no
get_config: saving to .keras cannot record the argument."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Head(keras.Model):
    def __init__(self, body, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        self.out = layers.Dense(1)

    def call(self, x):
        return self.out(self.body(x))


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = Head(layers.Dense(8, activation="relu"))
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
