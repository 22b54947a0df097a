"""KL304 positive inside a custom train_step: np.random picks the loss weight once, at trace
time; every compiled step reuses it."""
import numpy as np
import tensorflow as tf
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Noisy(keras.Model):
    def train_step(self, data):
        x, y = data
        w = np.random.uniform(0.5, 1.5)
        with tf.GradientTape() as tape:
            loss = w * self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


inputs = keras.Input((4,))
outputs = layers.Dense(1)(layers.Dense(8, activation="relu")(inputs))
model = Noisy(inputs, outputs)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=2, verbose=0)
