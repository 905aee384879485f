"""The credvault.v1 gRPC contract, generated from proto/ by grpcio-tools (see tests/test_stubs.py)."""
