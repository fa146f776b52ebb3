"""Tools around the runtime: sample generation and a local XRootD server."""
