"""ROOT's on-disk format turned into arrays: TTree and RNTuple event stores, chunking, the file
header check, baskets and pages, decompression, list kernels and memory by address."""
