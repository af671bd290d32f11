"""seqlib: the shared library of *Attention in Vision and Sequence Models*.

One module per concept, each small enough to read in one sitting. Chapters
import what they need, e.g. ``from seqlib import profiles, train, viz`` and
``from seqlib.data import load_fashion_mnist``.
"""

__version__ = "0.1.0"
