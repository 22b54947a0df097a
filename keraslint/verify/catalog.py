"""What ``keraslint verify`` measures for each catalog code (pure Python: no TensorFlow, no
PyTorch, no Keras import), for ``keraslint explain`` and the verifier itself.

Every code of the catalog (KL000, KL101..KL607) is in exactly one of the two tables:
``EXPERIMENTS`` (code -> one line on what is measured, as written vs hazard removed, from the
same weights and batches) or ``UNMEASURABLE`` (code -> why its effect cannot be measured).
``EXPERIMENT_NAMES`` gives the ``experiment`` field of a result.
"""

from __future__ import annotations

NAMES = {
    "KL000": "syntax-error",
    "KL101": "unseeded-training", "KL102": "partial-seeding", "KL103": "seed-after-build",
    "KL104": "op-determinism-off",
    "KL201": "global-floatx", "KL202": "floatx-after-build", "KL203": "float16-output",
    "KL204": "mixed-keras-imports", "KL205": "tf1-graph-mode",
    "KL301": "numpy-in-graph", "KL302": "tensor-to-python-in-graph", "KL303": "python-branch-on-tensor",
    "KL304": "trace-time-side-effect", "KL305": "variable-in-call", "KL306": "missing-get-config",
    "KL401": "implicit-optimizer-defaults", "KL402": "legacy-optimizer-kwargs", "KL403": "shared-optimizer",
    "KL404": "logits-mismatch", "KL405": "fit-vs-loop-defaults", "KL406": "validation-split-order",
    "KL501": "unbatched-dataset", "KL502": "batch-size-with-dataset", "KL503": "shuffle-after-batch",
    "KL504": "cache-after-shuffle", "KL505": "missing-prefetch",
    "KL601": "batchnorm-defaults-differ", "KL602": "layernorm-epsilon-differs",
    "KL603": "optimizer-defaults-differ", "KL604": "kernel-not-transposed", "KL605": "same-padding-stride",
    "KL606": "rnn-batch-first", "KL607": "reference-in-train-mode",
}

EXPERIMENTS = {
    "KL101": "the program run twice in fresh processes: initial weights, losses over N steps and final outputs "
             "compared; hazard removed: keras.utils.set_random_seed(0) before the program",
    "KL102": "the program run twice in fresh processes (its own partial seeding): weights, losses and outputs "
             "compared; hazard removed: one keras.utils.set_random_seed(0) seeding every generator",
    "KL103": "the program run twice in fresh processes: initial weights drawn before the seed call differ; "
             "hazard removed: the seed moved above the first layer",
    "KL104": "the seeded program run twice in fresh processes: losses and weights after N steps compared; hazard "
             "removed: tf.config.experimental.enable_op_determinism() (torch: use_deterministic_algorithms)",
    "KL201": "N steps in the precision set_floatx selected vs a float32 run, same initial weights and batches: "
             "max |Δ| of losses and outputs",
    "KL202": "N steps as written (set_floatx too late, no effect) vs set_floatx moved above the model, same "
             "initial weights and batches: max |Δ| of losses and outputs",
    "KL203": "the model's output under the mixed policy vs an all-float32 run of the same weights: max |Δ|; "
             "hazard removed: final layer in float32",
    "KL205": "fit under TF1 graph mode (disable_eager_execution as written) vs eager: fails or max |Δ| of losses",
    "KL301": "the same batch eagerly vs compiled (predict and one train step), plus gradient connectivity; "
             "hazard removed: NumPy calls on tensors dispatched to keras.ops",
    "KL302": "the same batch eagerly vs compiled (predict and one train step): a failure only compiled, or max |Δ|; "
             "hazard removed: run_eagerly=True",
    "KL303": "the same batch eagerly vs compiled: a failure only compiled, or max |Δ|; hazard removed: AutoGraph "
             "conversion of the Python control flow",
    "KL304": "how many times the Python-side side effect (random draw, clock, print, outside mutation) runs per "
             "fit step and per predict call: once at trace time vs every step; hazard removed: run_eagerly=True",
    "KL305": "the same batch eagerly vs compiled, train steps included: a failure only compiled (a variable "
             "created per call), or max |Δ|; hazard removed: the variable created once (as in build)",
    "KL306": "a save/load round trip (.keras): raises, or the reloaded model's outputs differ; hazard removed: a "
             "get_config recording the constructor arguments",
    "KL401": "N training steps of the Keras model vs a PyTorch reference (graph walked layer by layer, or the same "
             "forward on the torch backend trained by torch.optim) with PyTorch's optimizer defaults vs Keras's "
             "values: max |Δ weight|",
    "KL403": "two models compiled with one optimizer trained in turn: the second fails or the step count and "
             "slots are shared; hazard removed: each model its own optimizer",
    "KL404": "N steps with the loss as written vs from_logits consistent with the final activation, on the "
             "program's own backend: max |Δ output|",
    "KL406": "class (or target) distribution of the last-rows validation split vs a shuffled split: total "
             "variation distance (standardized mean gap for regression) between training and validation rows",
    "KL501": "the dataset as written vs batched: element rank against the model's input, steps per epoch, and "
             "one fit step of each (an error, or silent training on rows)",
    "KL502": "steps per epoch as written (the dataset's own batches) vs as the user asked (batch_size=)",
    "KL503": "sample order over several epochs: the fraction of within-batch pairs that recur every epoch; "
             "hazard removed: shuffle before batch",
    "KL504": "sample order over several epochs: the fraction of positions identical between epochs; hazard "
             "removed: shuffle after cache",
    "KL601": "N training steps of Keras vs a PyTorch reference with nn.BatchNorm defaults vs Keras's momentum and "
             "epsilon: max |Δ weight| (moving means included)",
    "KL602": "the model's output vs a PyTorch reference with nn.LayerNorm's default ε vs Keras's ε: max |Δ|",
    "KL603": "N training steps of Keras vs a PyTorch reference with the PyTorch optimizer's defaults for the values "
             "the Keras optimizer leaves implicit vs Keras's values: max |Δ weight|",
    "KL604": "the model's output vs a PyTorch reference whose Dense/conv kernels are copied without transpose vs "
             "with the right layout: max |Δ| (or a copy that raises)",
    "KL605": "the model's output vs a PyTorch reference with symmetric padding=k//2 vs TensorFlow's asymmetric "
             "'same' padding: max |Δ| (equal where the sizes make them equal)",
    "KL606": "the model's output vs a PyTorch reference whose LSTM/GRU has batch_first=False fed batch-major data "
             "vs batch_first=True: max |Δ|",
    "KL607": "the model's output vs a PyTorch reference left in training mode vs after .eval(): max |Δ|",
}
_OWN_PORT = ("; in a program that builds its own torch.nn.Module, the hazard is measured in that port instead "
             "(layers aligned, Keras weights loaded, the hazard removed where present)")
for _code in ("KL601", "KL602", "KL604", "KL605", "KL606", "KL607"):
    EXPERIMENTS[_code] += _OWN_PORT

UNMEASURABLE = {
    "KL000": "the file does not parse or decode: there is no program to run",
    "KL204": "mixing Keras 3 with tf_keras / legacy tf.compat.v1.keras objects fails at construction or mixes two "
             "libraries' objects; the numeric effect depends on which objects meet, and tf_keras is not part of "
             "the verify extra",
    "KL402": "lr= raises ValueError when the optimizer is built, so the program never trains (the failure is "
             "visible without verify); decay= is ignored with a warning, so there is only one run to measure",
    "KL405": "the custom GradientTape loop's batching and order are arbitrary Python that the verifier cannot "
             "extract and replay; the hazard is fit's implicit shuffle=True/batch_size=32 against that loop",
    "KL505": "a missing prefetch changes throughput only: the batches and the numbers are identical",
}

ALL_CODES = tuple(sorted(NAMES))

EXPERIMENT_NAMES = {
    "KL101": "two-runs", "KL102": "two-runs", "KL103": "two-runs", "KL104": "two-runs",
    "KL201": "float32-vs-float64", "KL202": "float32-vs-float64", "KL203": "float16-vs-float32",
    "KL205": "graph-mode-vs-eager",
    "KL301": "eager-vs-compiled", "KL302": "eager-vs-compiled", "KL303": "eager-vs-compiled",
    "KL305": "eager-vs-compiled", "KL304": "trace-count", "KL306": "save-load-round-trip",
    "KL401": "torch-reference", "KL403": "shared-optimizer", "KL404": "logits-consistency",
    "KL406": "split-distribution",
    "KL501": "batched-vs-unbatched", "KL502": "steps-per-epoch", "KL503": "sample-order", "KL504": "sample-order",
    "KL601": "torch-reference", "KL602": "torch-forward", "KL603": "torch-reference", "KL604": "torch-forward",
    "KL605": "torch-forward", "KL606": "torch-forward", "KL607": "torch-forward",
}


def describe(code: str) -> str:
    """One paragraph for ``keraslint explain``: what verify measures, or why it cannot."""
    code = code.upper()
    if code in EXPERIMENTS:
        return f"verify ({EXPERIMENT_NAMES[code]}): {EXPERIMENTS[code]}"
    if code in UNMEASURABLE:
        return f"verify: not measurable: {UNMEASURABLE[code]}"
    return "verify: no experiment (not a catalog code)"


assert set(EXPERIMENTS) | set(UNMEASURABLE) == set(NAMES) and not set(EXPERIMENTS) & set(UNMEASURABLE)
assert set(EXPERIMENT_NAMES) == set(EXPERIMENTS)
