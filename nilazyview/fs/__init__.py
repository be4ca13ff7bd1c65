"""File-system helpers at the bottom of the house: atomic writes, leftovers, file names, settings.

Nothing here knows about images; every other layer may use it.
"""
