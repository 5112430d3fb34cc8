"""Redress benchmarks and load generation (`python -m benchmarks`, `make bench`).

Every Redress figure is measured next to a raw-Kafka-client baseline run in the same process
tree, on the same broker, in the same run, and reported as absolute numbers plus a ratio.
`benchmarks.loadgen` is the fixed-rate complaint load generator the chaos suite also uses.
"""
