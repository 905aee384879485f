-- wrk script for bench/compare.py: read (GET) a random one of NKEYS OpenBao KV v2 secrets
-- "bench-0000".."bench-<NKEYS-1>" under the mount "secret", with BAO_TOKEN.
local nkeys
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  nkeys = tonumber(os.getenv("NKEYS"))
  wrk.headers["X-Vault-Token"] = os.getenv("BAO_TOKEN")
end

function request()
  return wrk.format("GET", string.format("/v1/secret/data/bench-%04d", math.random(0, nkeys - 1)))
end
