"""Subtomograms named in a RELION STAR (one MRC per row), a CryoEngine store or one MRC.

:mod:`.reading` reads them (class selection, pixel size, encoder sampling, references) and
computes frozen-encoder or invariant features; :mod:`.embed` writes embeddings to ``.npz``.
The subtomogram commands (``classify``, ``cluster``, ``align``, ``average``, ``embed``) are thin
layers over these.
"""
