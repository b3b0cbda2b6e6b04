"""Dataset makers: tools that write training data to disk in a layout ``train.data`` reads.

Each maker is its own module, runnable with ``python -m train.datasets.<name>``. Nothing is
imported here, so that running a module does not import it twice.
"""
