"""fieldlink benchmarks, each run as `python -m bench.<name>` from the repository's root.

`bench/cli.py` is what their command lines and runs share, `bench/report.py` what their
reports share, `bench/load.py` the machinery they drive the server with (what the tests
drive too is in `harness/`). See docs/benchmarks.md for what each one measures and the
figures measured so far.
"""
