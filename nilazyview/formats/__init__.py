"""Image formats: one codec module each (``nifti_codec``, ``mgh``, ``minc2``), a registry,
content detection, and the generic writer. Formats import nothing above them.
"""
