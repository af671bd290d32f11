"""seqlib: the shared library of *Attention in Vision and Sequence Models*.

One module per concept. Chapters import what they need, e.g.
``from seqlib import profiles, data, train, viz``.
"""

__version__ = "0.1.0"
