-- wrk script for meter-usage (scripts/bench-meter-hot.sh, scripts/bench-meter-ledger.sh):
--   wrk ... -s scripts/bench-meter.lua URL -- TOKEN PURCHASES_FILE RUN_TAG
-- Each request debits $0.000001 from a purchase picked at random from PURCHASES_FILE (one
-- `CustomerPurchaseID_<uuid>` a line; one line = the hot-purchase case) with a unique
-- Idempotency-Key (RUN_TAG-thread-counter), as an AI server metering calls would.
local threads = 0
local body = '{"usage_amount":"1","usage_unit":"tokens","billed_amount":"0.000001"}'

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  token = args[1]
  tag = args[3] or "run"
  purchases = {}
  for line in io.lines(args[2]) do
    if #line > 0 then purchases[#purchases + 1] = line end
  end
  math.randomseed(os.time() + tid * 7919)
  counter = 0
end

function request()
  counter = counter + 1
  local p = purchases[math.random(#purchases)]
  return wrk.format("POST", "/v1/purchase/" .. p .. "/meter-usage", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = tag .. "-" .. tid .. "-" .. counter,
  }, body)
end
