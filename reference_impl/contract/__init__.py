"""The server-harness contract: instrumentation records, decode step timing, the delay switch.

Stdlib only and free of relative imports outside this folder: the reference engine imports it as
`reference_impl.contract`, the harness reads what it writes, and the sglang probe loads this folder
privately (as `_harness_contract`) inside a server that has neither package on its path.
"""
