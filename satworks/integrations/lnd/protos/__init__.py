"""lnd's protos (subsets) and the Python modules generated from them: never edit ``*_pb2*``.

Regenerate with ``scripts/gen-protos`` (``build.py``); a test fails when the committed modules are stale.
"""
