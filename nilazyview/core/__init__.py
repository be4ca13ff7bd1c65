"""The pure core: indexing, on-disk layouts, the read planner, header containers, value maps.

No I/O and no knowledge of files or formats; imports only :mod:`nilazyview.errors`.
"""
