"""A custom attention block written while prototyping in a notebook.

Everything works when the layer is called eagerly, and breaks (or silently differs)
under model.fit / model.predict.
"""
import numpy as np
import keras
from keras import layers, ops


class ScaledDotAttention(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.proj = layers.Dense(units)

    def call(self, query, value, training=None):
        q = self.proj(query)
        scores = ops.matmul(q, ops.transpose(value, (0, 2, 1))) / np.sqrt(self.units)
        weights = np.exp(scores) / np.sum(np.exp(scores), axis=-1, keepdims=True)
        if ops.max(weights) > 0.99:
            print("attention collapsed")
        return ops.matmul(weights, value)


class NoisyDense(layers.Dense):
    def call(self, inputs):
        noise_scale = float(ops.std(inputs))
        noise = np.random.normal(0.0, noise_scale, size=(self.units,))
        return super().call(inputs) + noise


class Residual(layers.Layer):
    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, x):
        return x + self.inner(x)


def build(units=32):
    inputs = keras.Input((16, units))
    x = ScaledDotAttention(units)(inputs, inputs)
    x = Residual(layers.Dense(units))(x)
    outputs = NoisyDense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)
