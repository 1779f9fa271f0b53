"""The ``modelswap`` command line: parser, store commands, serve and demo, text output."""
