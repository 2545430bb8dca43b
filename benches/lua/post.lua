-- wrk script: POST one KServe v2 inference request for the `mlp` fixture (input [1,64] FP32).
-- The body is the same on every request; values are i/64 for i = 0..63.
local data = {}
for i = 0, 63 do
  data[#data + 1] = string.format("%.6f", i / 64)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
  .. table.concat(data, ",") .. ']}]}'
