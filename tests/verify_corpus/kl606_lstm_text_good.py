"""KL606 clean twin: the same text model with a bag-of-embeddings head (no recurrent layer),
so batch_first cannot matter."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((12,), dtype="int32"),
    layers.Embedding(50, 8),
    layers.GlobalAveragePooling1D(),
    layers.Dense(1, activation="sigmoid"),
])
rng = np.random.default_rng(0)
x = rng.integers(0, 50, size=(64, 12)).astype("int32")
y = (x[:, 0] > 25).astype("float32")[:, None]
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="binary_crossentropy")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
