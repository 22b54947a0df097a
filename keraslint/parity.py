"""Parity context: does this file compare Keras with another implementation?

Several rules are about *hidden defaults* (an optimizer string, a framework's default ε or
momentum, op determinism left off). A default is only a parity hazard where the author
compares the Keras model with something that does not share it: a PyTorch side, a raw
TensorFlow reference, or where the file states that it must reproduce. In a Keras-only
tutorial the same line is harmless, and reporting it is crying wolf.

The semantic model records the evidence during the single traversal (``record_*``); a rule
asks ``ctx.parity`` in ``finish()`` and names the evidence in its message through a
position reference (``Rule.report(..., refs={"ctx": parity.node})`` and ``{ctx}`` in the
message, which the engine turns into ``line N``).

Kinds of context, strongest first:

* ``pytorch``: the file builds a PyTorch model or optimizer (an ``nn.Module`` subclass, a
  ``torch.nn`` layer, a ``torch.optim`` optimizer) or loads a PyTorch checkpoint;
* ``tensorflow``: the file has a raw-TensorFlow reference: a ``tf.Module`` subclass, TF1
  optimizers (``tf.compat.v1.train.AdamOptimizer``: ε = 1e-8), sessions or placeholders;
* ``jax``: the file builds a Flax/Haiku/Optax reference.

Seeding is a different kind of intent (reproducibility, not parity); ``seeded`` records
where the file seeds, for the rules that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

# canonical-name prefixes of a second implementation's model or optimizer
_TORCH_BUILD_PREFIXES = ("torch.nn.", "torch.optim.")
_TORCH_CALLS = {"torch.load", "torch.jit.load", "torch.hub.load"}
_TF_REFERENCE = {
    "tensorflow.Module",
    "tensorflow.compat.v1.Session",
    "tensorflow.compat.v1.InteractiveSession",
    "tensorflow.compat.v1.placeholder",
    "tensorflow.Session",
    "tensorflow.placeholder",
    "tensorflow.estimator.Estimator",
}
_TF_REFERENCE_PREFIXES = ("tensorflow.compat.v1.train.", "tensorflow.train.AdamOptimizer",
                          "tensorflow.train.GradientDescentOptimizer", "tensorflow.train.RMSPropOptimizer",
                          "tensorflow.train.MomentumOptimizer")
_JAX_PREFIXES = ("flax.linen.", "flax.nnx.", "haiku.", "optax.")

_WHAT = {
    "pytorch": "this file compares Keras with PyTorch",
    "tensorflow": "this file compares Keras with a raw-TensorFlow reference",
    "jax": "this file compares Keras with a JAX reference",
}
_ORDER = ("pytorch", "tensorflow", "jax")


@dataclass(frozen=True)
class ParityContext:
    kind: str  # "pytorch" | "tensorflow" | "jax" | "strict"
    node: Any  # where the evidence is (None for "strict")
    evidence: str  # what was seen, e.g. "`torch.nn.Linear`"

    def phrase(self, ref: str = "{ctx}") -> str:
        """Why the context applies, for a message: "this file compares Keras with PyTorch
        (`torch.nn.Linear`, {ctx})". ``ref`` is the position placeholder of ``node``."""
        if self.kind == "strict":
            return "reported everywhere because `strict` is on"
        return f"{_WHAT[self.kind]} ({self.evidence}, {ref})"


class ParityRecorder:
    """Collects the evidence; one per Context, filled by the semantic model's handlers."""

    __slots__ = ("first", "seeds")

    def __init__(self) -> None:
        self.first: dict = {}  # kind -> (node, evidence)
        self.seeds: list = []  # (node, canonical name) of seed / determinism calls

    def _add(self, kind: str, node: Any, evidence: str) -> None:
        if kind not in self.first:
            self.first[kind] = (node, evidence)

    def record_base(self, node: Any, qualname: str) -> None:
        """A class statement with base ``qualname`` (canonical)."""
        if qualname == "torch.nn.Module" or qualname.startswith("torch.nn.") and qualname[9:10].isupper():
            self._add("pytorch", node, f"a subclass of `{qualname}`")
        elif qualname == "tensorflow.Module":
            self._add("tensorflow", node, "a subclass of `tf.Module`")
        elif qualname.startswith(("flax.linen.Module", "flax.nnx.Module", "haiku.Module")):
            self._add("jax", node, f"a subclass of `{qualname}`")

    def record_call(self, node: Any, q: str) -> None:
        """A call of the canonical name ``q``."""
        if q.startswith(_TORCH_BUILD_PREFIXES):
            last = q.rsplit(".", 1)[-1]
            # a module or optimizer class (nn.Linear, optim.Adam), not nn.functional / init
            if last[:1].isupper() and ".functional." not in q and ".init." not in q:
                self._add("pytorch", node, f"`{q}`")
        elif q in _TORCH_CALLS:
            self._add("pytorch", node, f"`{q}`")
        elif q in _TF_REFERENCE or q.startswith(_TF_REFERENCE_PREFIXES):
            self._add("tensorflow", node, f"`{q}`")
        elif q.startswith(_JAX_PREFIXES) and q.rsplit(".", 1)[-1][:1].isupper():
            self._add("jax", node, f"`{q}`")
        elif q in _SEED_CALLS:
            self.seeds.append((node, q))

    def context(self, strict: bool = False) -> Optional[ParityContext]:
        for kind in _ORDER:
            hit = self.first.get(kind)
            if hit is not None:
                return ParityContext(kind, hit[0], hit[1])
        if strict:
            return ParityContext("strict", None, "")
        return None


_SEED_CALLS = {
    "keras.utils.set_random_seed",
    "tensorflow.random.set_seed",
    "tensorflow.compat.v1.set_random_seed",
    "tensorflow.set_random_seed",
    "numpy.random.seed",
    "random.seed",
    "torch.manual_seed",
    "tensorflow.config.experimental.enable_op_determinism",
}
