"""KL305 positive (tf.Variable): a fresh tf.Variable per call works eagerly, but fit's
compiled step refuses to create variables after the first trace."""
import numpy as np
import tensorflow as tf
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Shift(layers.Layer):
    def call(self, x):
        shift = tf.Variable(tf.zeros((x.shape[-1],)), trainable=False)
        return x + shift


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.shift, self.out = layers.Dense(8), Shift(), layers.Dense(1)

    def call(self, x):
        return self.out(self.shift(self.hidden(x)))


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = Net()
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
