"""What the tests and the benchmarks both drive: a real `fieldlink server` process
(`harness.server`), the clients units and dispatchers hold (`harness.clients`), the
services they need on free ports (`harness.services`), the stores (`harness.stores`) and
waiting for another process (`harness.waiting`).

Development tooling, not installed with the project: it is imported from the repository's
root, which pytest (the rootdir) and `python -m bench.<name>` both put on `sys.path`.
"""
