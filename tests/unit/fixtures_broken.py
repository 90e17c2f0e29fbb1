"""A module that fails when imported, for validation's "importing raised" rule."""

raise RuntimeError("this module fails on import")
