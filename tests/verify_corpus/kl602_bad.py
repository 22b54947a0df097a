"""KL602 positive: LayerNormalization at Keras's epsilon 1e-3 on features with a small spread;
nn.LayerNorm's default eps=1e-5 normalizes them very differently."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), layers.LayerNormalization(), layers.Dense(1)])
rng = np.random.default_rng(0)
x = (0.05 * rng.normal(size=(64, 8))).astype("float32")
y = x.sum(axis=1, keepdims=True)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
