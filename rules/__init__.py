"""The built-in rules of keraslint, one module per hazard family.

Installed as ``keraslint.rules``. Every module here is loaded by the registry and every
:class:`keraslint.rule.Rule` subclass with a ``code`` in it is a rule: adding a rule is
adding one class (and one folder in ``fixtures/``).
"""
