"""KL306 clean twin: the same model with a get_config/from_config that serialize the layer."""
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

    def get_config(self):
        return {"body": keras.saving.serialize_keras_object(self.body), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config.pop("body")), **config)


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = Head(layers.Dense(8, activation="relu"))
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
