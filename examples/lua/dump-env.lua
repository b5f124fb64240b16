#!/usr/bin/env lua
-- Prints its environment as NAME=value lines sorted by name. Run: websocketd --port=8080 ./dump-env.lua
-- Standard Lua can only look variables up by name, so the list comes from Linux's
-- /proc/self/environ (NAME=value entries separated by NUL bytes).
io.stdout:setvbuf("line") -- flush after every line

local file = assert(io.open("/proc/self/environ", "rb"))
local environ = file:read("a")
file:close()

local entries = {}
for entry in environ:gmatch("([^%z]+)") do
  if entry:find("=", 1, true) then
    entries[#entries + 1] = entry
  end
end
local function name(entry)
  return entry:sub(1, entry:find("=", 1, true) - 1)
end
table.sort(entries, function(a, b) return name(a) < name(b) end)
for _, entry in ipairs(entries) do
  io.write(entry, "\n")
end
