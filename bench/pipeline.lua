-- wrk script for bench/imds_vs_nginx.sh's pipelined scenario: each write
-- carries $PIPELINE requests for the same path (HTTP/1.1 pipelining), the
-- way `openimds proxy` batches a turn's GETs to the server. wrk counts every
-- response. Usage: PIPELINE=8 wrk -s bench/pipeline.lua URL
local depth = tonumber(os.getenv("PIPELINE") or "8")
local batch

init = function(args)
  local one = wrk.format(nil, wrk.path)
  local parts = {}
  for i = 1, depth do parts[i] = one end
  batch = table.concat(parts)
end

request = function()
  return batch
end
