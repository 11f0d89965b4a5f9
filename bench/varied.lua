-- wrk script: POST one body, with VARY_LEN bytes at VARY_AT (0-based) rewritten per request so that requests
-- differ. VARY_KIND=f32 writes a float32 in [8, 16) (binary tensors), text writes a decimal integer (JSON).
-- REPEAT_SHARE (0..1) of the requests reuse one of 200 popular values instead: the cache's share of hits.
-- Without VARY_AT every request is the same body.
wrk.method = "POST"
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local body = file:read("*a")
file:close()
local headers = {}
local header_length = os.getenv("HEADER_LENGTH")
if header_length and header_length ~= "" then
  headers["Content-Type"] = "application/octet-stream"
  headers["Inference-Header-Content-Length"] = header_length
else
  headers["Content-Type"] = "application/json"
end
local at = tonumber(os.getenv("VARY_AT") or "")
local length = tonumber(os.getenv("VARY_LEN") or "0")
local kind = os.getenv("VARY_KIND") or "f32"
local repeat_share = tonumber(os.getenv("REPEAT_SHARE") or "0")
-- Each wrk run starts its new values where the caller says, so a later run never repeats an earlier one's.
local counter = tonumber(os.getenv("FIRST_NEW") or "1000")
math.randomseed(tonumber(os.getenv("SEED") or "7"))
local before, after = body, ""
if at then
  before, after = body:sub(1, at), body:sub(at + length + 1)
end

local function value(n)
  if kind == "f32" then  -- little-endian float32 0x41 b2 b1 b0 with b2 < 128: exponent 130, so in [8, 16)
    return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 128, 0x41)
  end
  return tostring(n)
end

request = function()
  if not at then
    return wrk.format("POST", nil, headers, body)
  end
  local n
  if repeat_share > 0 and math.random() < repeat_share then
    n = math.random(1, 200)
  else
    counter = counter + 1
    n = counter
  end
  return wrk.format("POST", nil, headers, before .. value(n) .. after)
end
