"""KL304 clean twin of kl304_train_step.py: the loss weight is drawn with keras.random inside
the step, so every compiled step draws a new one."""
import numpy as np
import tensorflow as tf
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Noisy(keras.Model):
    def train_step(self, data):
        x, y = data
        w = keras.random.uniform((), 0.5, 1.5, seed=self.seed_gen)
        with tf.GradientTape() as tape:
            loss = w * self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


inputs = keras.Input((4,))
outputs = layers.Dense(1)(layers.Dense(8, activation="relu")(inputs))
model = Noisy(inputs, outputs)
model.seed_gen = keras.random.SeedGenerator(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=2, verbose=0)
