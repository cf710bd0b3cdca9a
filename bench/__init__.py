"""fieldlink benchmarks: `python -m bench.ingest` and `python -m bench.alarm_latency`.

See docs/benchmarks.md for what each one measures and the figures measured so far.
"""
