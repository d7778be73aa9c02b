-- wrk: store one fresh random pattern (40 of 2048 bits) per request on a neuron of its own
-- thread, so that many clients write single patterns concurrently.
local counter = 0

-- Each thread writes to neurons of its own, named after a random prefix.
function setup(thread)
  thread:set("prefix", "t" .. tostring(math.random(1, 1e9)))
end

function init(args)
  math.randomseed(os.time() + math.random(1, 1e6))
end

local function pattern()
  local chosen, cells = {}, {}
  while #cells < 40 do
    local bit = math.random(0, 2047)
    if not chosen[bit] then
      chosen[bit] = true
      cells[#cells + 1] = bit
    end
  end
  return "[" .. table.concat(cells, ",") .. "]"
end

function request()
  counter = counter + 1
  -- 100 patterns per neuron, as in the standard workload.
  local neuron = prefix .. "-" .. tostring(math.floor(counter / 100))
  return wrk.format("POST", "/v1/spaces/load/neurons/" .. neuron .. "/patterns",
    {["Content-Type"] = "application/json"}, '{"active":' .. pattern() .. "}")
end
