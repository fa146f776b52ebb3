"""Build bootable VM images that carry the hepstream runtime."""
