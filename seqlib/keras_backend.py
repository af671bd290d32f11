"""The one place where seqlib sets up Keras: Keras 3 on the PyTorch backend.

Keras reads its backend once, when it is first imported (from the
``KERAS_BACKEND`` environment variable, else from ``~/.keras/keras.json``).
seqlib's Keras modules (:mod:`seqlib.rvt_keras`, :mod:`seqlib.tlb_keras`) need
the torch backend, so that their tensors are ``torch.Tensor`` (checked with
:func:`seqlib.shapes.expect_shape`) and no TensorFlow is needed. They call
:func:`require_torch_backend` instead of importing ``keras`` themselves; so can
a notebook, before its own ``import keras``.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

BACKEND = "torch"


def require_torch_backend() -> ModuleType:
    """Make sure Keras runs on the torch backend and return the ``keras``
    module.

    Sets ``KERAS_BACKEND=torch`` if the variable is unset and Keras has not
    been imported yet; then imports Keras and checks its backend.

    Raises:
        ImportError: if Keras was already imported with another backend, or
            ``KERAS_BACKEND`` names another one (the message says what to do).
    """
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", BACKEND)
    import keras

    backend = keras.backend.backend()
    if backend != BACKEND:
        how = (
            "keras was imported before seqlib could choose the backend; set "
            "KERAS_BACKEND=torch in the environment (or call "
            "seqlib.keras_backend.require_torch_backend()) before the first "
            "`import keras`"
            if os.environ.get("KERAS_BACKEND", BACKEND) == BACKEND
            else (
                f"KERAS_BACKEND is {os.environ['KERAS_BACKEND']!r}; set it to "
                "'torch' before the first `import keras`"
            )
        )
        raise ImportError(
            "seqlib's Keras models need the Keras torch backend, got "
            f"{backend!r}: {how}"
        )
    return keras
