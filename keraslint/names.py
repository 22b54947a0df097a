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
        if qualname.startswith("tensorflow.python."):
            return _tf_internal(qualname)
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


# TensorFlow's internal modules re-exported under public names: ``from
# tensorflow.python.framework.ops import disable_eager_execution`` is the same object as
# ``tf.compat.v1.disable_eager_execution``. Module -> public namespace ("" = ``tensorflow``).
_TF_INTERNAL_MODULES = {
    "tensorflow.python.ops.math_ops": "tensorflow.math",
    "tensorflow.python.ops.array_ops": "tensorflow",
    "tensorflow.python.ops.array_ops_stack": "tensorflow",
    "tensorflow.python.ops.nn_ops": "tensorflow.nn",
    "tensorflow.python.ops.nn_impl": "tensorflow.nn",
    "tensorflow.python.ops.nn": "tensorflow.nn",
    "tensorflow.python.ops.random_ops": "tensorflow.random",
    "tensorflow.python.ops.stateless_random_ops": "tensorflow.random",
    "tensorflow.python.ops.linalg_ops": "tensorflow.linalg",
    "tensorflow.python.ops.control_flow_ops": "tensorflow",
    "tensorflow.python.ops.cond": "tensorflow",
    "tensorflow.python.ops.while_loop": "tensorflow",
    "tensorflow.python.ops.variables": "tensorflow",
    "tensorflow.python.ops.script_ops": "tensorflow",
    "tensorflow.python.framework.constant_op": "tensorflow",
    "tensorflow.python.framework.tensor_conversion": "tensorflow",
    "tensorflow.python.framework.random_seed": "tensorflow.random",
    "tensorflow.python.eager.def_function": "tensorflow",
    "tensorflow.python.eager.polymorphic_function.polymorphic_function": "tensorflow",
    "tensorflow.python.data.ops.dataset_ops": "tensorflow.data",
    "tensorflow.python.data.ops.readers": "tensorflow.data",
}
# Objects whose public name differs from the internal one.
_TF_INTERNAL_NAMES = {
    "tensorflow.python.framework.ops.disable_eager_execution": "tensorflow.compat.v1.disable_eager_execution",
    "tensorflow.python.framework.ops.enable_eager_execution": "tensorflow.compat.v1.enable_eager_execution",
    "tensorflow.python.framework.ops.convert_to_tensor": "tensorflow.convert_to_tensor",
    "tensorflow.python.framework.ops.Tensor": "tensorflow.Tensor",
    "tensorflow.python.framework.ops.Graph": "tensorflow.Graph",
    "tensorflow.python.compat.v2_compat.disable_v2_behavior": "tensorflow.compat.v1.disable_v2_behavior",
    "tensorflow.python.framework.random_seed.set_random_seed": "tensorflow.random.set_seed",
    "tensorflow.python.framework.random_seed.set_seed": "tensorflow.random.set_seed",
    "tensorflow.python.framework.config.enable_op_determinism": "tensorflow.config.experimental.enable_op_determinism",
    "tensorflow.python.data.ops.dataset_ops.DatasetV2": "tensorflow.data.Dataset",
    "tensorflow.python.ops.random_ops.random_uniform": "tensorflow.random.uniform",
    "tensorflow.python.ops.random_ops.random_normal": "tensorflow.random.normal",
    "tensorflow.python.ops.random_ops.random_shuffle": "tensorflow.random.shuffle",
    "tensorflow.python.ops.random_ops.random_gamma": "tensorflow.random.gamma",
    "tensorflow.python.ops.random_ops.random_poisson": "tensorflow.random.poisson",
    "tensorflow.python.ops.script_ops.eager_py_func": "tensorflow.py_function",
}


def _tf_internal(qualname: str) -> str:
    """Public spelling of a name under ``tensorflow.python`` (unknown ones unchanged)."""
    hit = _TF_INTERNAL_NAMES.get(qualname)
    if hit is not None:
        return hit
    for mod, public in _TF_INTERNAL_MODULES.items():
        if qualname.startswith(mod + "."):
            rest = qualname[len(mod) + 1:]
            name = f"{public}.{rest}"
            # dataset_ops.Dataset.from_tensor_slices keeps its class path
            return name
    return qualname


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
