"""ROOT's on-disk format turned into arrays.

- the event stores: :mod:`~hepstream.root.store` (what the reader needs of one, and which
  one a file holds), :mod:`~hepstream.root.ttree`, :mod:`~hepstream.root.rntuple`, and
  what they share (:mod:`~hepstream.root.reads`);
- the decoders: TTree baskets (:mod:`~hepstream.root.baskets`, with the list kernels of
  :mod:`~hepstream.root.lists`), RNTuple pages (:mod:`~hepstream.root.pages`) and page
  lists (:mod:`~hepstream.root.pagelists`), decompression
  (:mod:`~hepstream.root.decompress`), decoding as bytes arrive
  (:mod:`~hepstream.root.arrivals`), memory by address (:mod:`~hepstream.root.native`);
- planning chunks (:mod:`~hepstream.root.chunks`) and the file header check
  (:mod:`~hepstream.root.header`);
- every private part of uproot relied on, in one place (:mod:`~hepstream.root.uproot_internals`).
"""
