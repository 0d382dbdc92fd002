"""The sglang probe (hooks that record inside a live server), its launch environment, and the records' reader.

The record format, step timer and delay switch they share with the reference engine live in
reference_impl/contract.
"""
