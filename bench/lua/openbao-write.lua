-- wrk script for bench/compare.py: write (POST, a new version of) a random one of NKEYS OpenBao
-- KV v2 secrets, a body the size of an AWS key pair, with BAO_TOKEN.
local nkeys
local body = '{"data":{"access_key_id":"AKIABENCHMARK0000000",' ..
             '"secret_access_key":"bench/secret/access/key/0123456789abcdefghij"}}'
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  nkeys = tonumber(os.getenv("NKEYS"))
  wrk.headers["X-Vault-Token"] = os.getenv("BAO_TOKEN")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  return wrk.format("POST", string.format("/v1/secret/data/bench-%04d", math.random(0, nkeys - 1)), nil, body)
end
