"""KL501 clean twin of kl501_rows.py: the same rank-3 samples batched by 16 (13 steps an epoch)."""
import numpy as np
import tensorflow as tf
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(200, 10, 4)).astype("float32")
y = x.mean(axis=(1, 2))[:, None].astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(200).batch(16)

model = keras.Sequential([layers.Flatten(), layers.Dense(8, activation="relu"), layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(ds, epochs=1, verbose=0)
