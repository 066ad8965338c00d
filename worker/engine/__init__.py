"""The I/O-free engine: the state (graph, changes, lessons, deadlines) and the handlers that apply
decoded events to it and fire its deadlines.

Everything here is a function of (state, event, policy, now): no Kafka, no Prometheus, no HTTP,
no logging, no clock reads. The rest of ``cmdb_worker.worker`` feeds it events and carries its
findings and changed records out; an import-linter contract keeps the arrows that way.
"""
