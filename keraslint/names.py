"""Qualified names: one canonical spelling for every way a file can name a Keras object.

``tf.keras.optimizers.Adam``, ``tensorflow.keras.optimizers.Adam``, ``keras.optimizers.Adam``,
``keras.src.optimizers.adam.Adam`` and ``tf_keras.optimizers.Adam`` all canonicalize to
``keras.optimizers.Adam``. Rules compare canonical names; :func:`keras_flavor` keeps the
information which Keras a raw name came from (Keras 3, ``tf.keras`` or legacy ``tf_keras``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

# Longest prefixes first: each maps to the canonical root "keras".
_KERAS_PREFIXES = (
    ("tensorflow.python.keras.", "tf_keras"),
    ("tensorflow.compat.v1.keras.", "tf_keras"),
    ("tensorflow.compat.v2.keras.", "tf.keras"),
    ("tensorflow.keras.", "tf.keras"),
    ("keras._tf_keras.keras.", "tf.keras"),
    ("tf_keras.src.", "tf_keras"),
    ("tf_keras.", "tf_keras"),
    ("keras.src.", "keras"),
    ("keras.api.", "keras"),
    ("keras.", "keras"),
)
_KERAS_ROOT_MODULES = {
    "tensorflow.keras": "tf.keras",
    "tensorflow.python.keras": "tf_keras",
    "tensorflow.compat.v1.keras": "tf_keras",
    "tensorflow.compat.v2.keras": "tf.keras",
    "tf_keras": "tf_keras",
    "keras.src": "keras",
    "keras": "keras",
}

# keras.<sub>.<deep.module.path>.<Name> collapses to keras.<sub>.<Name>
_COLLAPSE = {
    "layers",
    "ops",
    "optimizers",
    "losses",
    "metrics",
    "initializers",
    "activations",
    "models",
    "random",
    "utils",
    "config",
    "backend",
    "callbacks",
    "regularizers",
    "constraints",
    "mixed_precision",
    "dtype_policies",
    "saving",
    "applications",
    "preprocessing",
}

# Top-level Keras exports that live in a submodule.
_TOP_LEVEL = {
    "keras.Model": "keras.models.Model",
    "keras.Sequential": "keras.models.Sequential",
    "keras.Input": "keras.layers.Input",
    "keras.Layer": "keras.layers.Layer",
    "keras.Variable": "keras.backend.Variable",
    "keras.Loss": "keras.losses.Loss",
    "keras.Metric": "keras.metrics.Metric",
    "keras.Optimizer": "keras.optimizers.Optimizer",
    "keras.Initializer": "keras.initializers.Initializer",
    "keras.Regularizer": "keras.regularizers.Regularizer",
    "keras.Constraint": "keras.constraints.Constraint",
    "keras.Function": "keras.backend.Function",
    "keras.ops.numpy": "keras.ops",
    "keras.ops.nn": "keras.ops",
    "keras.ops.math": "keras.ops",
    "keras.ops.core": "keras.ops",
    "keras.ops.linalg": "keras.ops",
    "keras.ops.image": "keras.ops.image",
    "keras.layers.InputLayer": "keras.layers.InputLayer",
    "keras.engine.training.Model": "keras.models.Model",
    "keras.engine.sequential.Sequential": "keras.models.Sequential",
    "keras.engine.base_layer.Layer": "keras.layers.Layer",
    "keras.engine.functional.Functional": "keras.models.Model",
    "keras.models.model.Model": "keras.models.Model",
    "keras.models.functional.Functional": "keras.models.Model",
    "keras.layers.layer.Layer": "keras.layers.Layer",
}


@lru_cache(maxsize=4096)
def canonical(qualname: str) -> str:
    """Canonical spelling of a fully qualified name (already resolved through imports)."""
    if qualname in _KERAS_ROOT_MODULES:
        return "keras"
    name = qualname
    for prefix, _flavor in _KERAS_PREFIXES:
        if qualname.startswith(prefix):
            name = "keras." + qualname[len(prefix):]
            break
    else:
        return qualname  # not Keras: numpy.*, tensorflow.*, torch.* stay as they are
    if name in _TOP_LEVEL:
        return _TOP_LEVEL[name]
    parts = name.split(".")
    if len(parts) > 3 and parts[1] in _COLLAPSE:
        # keras.layers.core.dense.Dense -> keras.layers.Dense
        if parts[1] == "ops" and parts[2] == "image":
            return "keras.ops.image." + parts[-1]
        name = ".".join((parts[0], parts[1], parts[-1]))
    elif len(parts) == 3 and parts[1] in _COLLAPSE and parts[2] in ("numpy", "nn", "math", "core"):
        name = "keras." + parts[1]
    if name in _TOP_LEVEL:
        return _TOP_LEVEL[name]
    return name


@lru_cache(maxsize=4096)
def keras_flavor(qualname: str) -> Optional[str]:
    """Which Keras a fully qualified name belongs to: "keras" (Keras 3), "tf.keras",
    "tf_keras" (legacy Keras 2 package or tf.compat.v1.keras), or None (not Keras)."""
    if qualname in _KERAS_ROOT_MODULES:
        return _KERAS_ROOT_MODULES[qualname]
    for prefix, flavor in _KERAS_PREFIXES:
        if qualname.startswith(prefix):
            return flavor
    return None
