-- wrk script for the cache benchmark: digits JSON requests whose first pixel makes them distinct.
-- CACHE_MODE=hit: always the same request (all hits once cached); miss: every request new (no hits);
-- mix: 80% from 200 popular requests, 20% new (about 80% hits once the popular ones are cached).
local mode = os.getenv("CACHE_MODE") or "hit"
local rest = os.getenv("REST_OF_IMAGE")
local counter = tonumber(os.getenv("FIRST_NEW") or "1000000")
local headers = {["Content-Type"] = "application/json"}
math.randomseed(7)

local function body(first_pixel)
  return '{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,8,8],"data":[' .. first_pixel .. ',' .. rest .. ']}]}'
end

request = function()
  local pixel
  if mode == "hit" then
    pixel = 0
  elseif mode == "miss" or math.random() >= 0.8 then
    counter = counter + 1
    pixel = counter
  else
    pixel = math.random(1, 200)
  end
  return wrk.format("POST", nil, headers, body(pixel))
end
