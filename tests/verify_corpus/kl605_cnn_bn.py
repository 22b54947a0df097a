"""KL605 positive, CNN + BatchNormalization: Conv2D(stride 2, padding="same") on 8x8 inputs
pads (0, 1) in TensorFlow; a PyTorch port with padding=1 pads (1, 1): every output shifts."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((8, 8, 3)),
    layers.Conv2D(8, 3, strides=2, padding="same"),
    layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
    layers.ReLU(),
    layers.GlobalAveragePooling2D(),
    layers.Dense(2),
])
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
y = x.mean(axis=(1, 2))[:, :2]
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
