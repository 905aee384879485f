#!/usr/bin/env bash
# Regenerates the committed stubs (src/credvault/v1/) from proto/ with the pinned grpcio-tools
# (pip install -e "clients/python[test]"); tests/test_stubs.py fails until this is run after a
# change of the protos.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m grpc_tools.protoc -I proto --python_out=clients/python/src --pyi_out=clients/python/src \
    --grpc_python_out=clients/python/src proto/credvault/v1/*.proto
