.PHONY: setup demo test lint bench

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/fieldlink demo

test:
	scripts/test.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

bench: setup
	.venv/bin/python -m bench.ingest
	.venv/bin/python -m bench.alarm_latency
	.venv/bin/python -m bench.terminals
	.venv/bin/python -m bench.scale
	.venv/bin/python -m bench.recommend
	.venv/bin/python -m bench.outage
