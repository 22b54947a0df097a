"""KL501 positive, silent: rank-3 samples without .batch() into a model with no Input. Each
(10, 4) sample is taken as a batch of 10 rows: fit trains without error, 200 steps an epoch
instead of 13."""
import numpy as np
import tensorflow as tf
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(200, 10, 4)).astype("float32")
y = x.mean(axis=(1, 2))[:, None].astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(200)

model = keras.Sequential([layers.Dense(8, activation="relu"), layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(ds, epochs=1, verbose=0)
