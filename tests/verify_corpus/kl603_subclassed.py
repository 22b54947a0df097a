"""KL603 positive, subclassed model: RMSprop(learning_rate=3e-3) leaves rho implicit (0.9); a
PyTorch port with torch.optim.RMSprop(lr=3e-3) trains with alpha=0.99 and eps=1e-8."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)


class Regressor(keras.Model):
    def __init__(self):
        super().__init__()
        self.a, self.b = layers.Dense(16, activation="tanh"), layers.Dense(1)

    def call(self, x):
        return self.b(self.a(x))


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = (0.01 * x.sum(axis=1, keepdims=True)).astype("float32")
model = Regressor()
model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=3e-3), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
