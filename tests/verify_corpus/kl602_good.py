"""KL602 clean twin: LayerNormalization(epsilon=1e-5), the value nn.LayerNorm uses by default."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), layers.LayerNormalization(epsilon=1e-5), layers.Dense(1)])
rng = np.random.default_rng(0)
x = (0.05 * rng.normal(size=(64, 8))).astype("float32")
y = x.sum(axis=1, keepdims=True)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
