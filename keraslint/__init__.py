"""keraslint: find parity hazards in Keras code.

The package is deliberately import-light: ``keraslint check`` must never import
TensorFlow, PyTorch or JAX, and importing this package pulls in nothing heavy.
"""

__version__ = "0.1.0"
