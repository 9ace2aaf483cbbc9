"""TensorFlow and Keras, imported on first use.

`import tensorflow` costs 3-5 s. Activity scripts write `from labkit.deferred import keras`
at the top, exactly where `import keras` would stand, and use `keras.layers.Dense` as usual;
the real import happens the first time a name is looked up, which is after the command line
has been checked. A mistyped flag therefore gets its one-line error at once.
"""

from __future__ import annotations

import importlib
import types

# Names that tools probe on any object (copy, pickle, doctest, inspect); answering them must not
# load TensorFlow.
_PROBED_BY_TOOLS = {
    "__path__",
    "__wrapped__",
    "__getstate__",
    "__setstate__",
    "__reduce__",
    "__reduce_ex__",
    "__copy__",
    "__deepcopy__",
    "__signature__",
}


class DeferredModule(types.ModuleType):
    def __init__(self, target: str):
        super().__init__(target)
        self.__dict__["_target"] = target

    def __getattr__(self, name: str):
        if name in _PROBED_BY_TOOLS:
            raise AttributeError(name)
        return getattr(importlib.import_module(self._target), name)

    def __repr__(self) -> str:
        return f"<deferred module {self._target!r}>"


keras = DeferredModule("keras")
tf = DeferredModule("tensorflow")
