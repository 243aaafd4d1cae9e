"""The ``xnatctl`` command line: one module per command group."""
