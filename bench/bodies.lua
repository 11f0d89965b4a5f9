-- wrk script: POST JSON bodies in turn, one per line of BODIES_FILE, each request the next line (all
-- connections share the turn), starting over at the end. Requests are formatted once, before the run.
local requests = {}
for line in io.lines(os.getenv("BODIES_FILE")) do
  requests[#requests + 1] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)
end
local turn = 0

request = function()
  turn = turn % #requests + 1
  return requests[turn]
end
