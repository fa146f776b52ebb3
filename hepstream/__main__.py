from hepstream.cli import entry

entry()
