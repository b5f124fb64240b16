#!/usr/bin/env lua
-- Sends "tick N" every second and, at the same time, answers every line it reads with
-- "echo: LINE". Run: websocketd --port=8080 ./send-receive.lua
-- Standard Lua cannot wait for input and a timer at once, so a second copy of this script,
-- started with --ticker and writing to the same output, does the ticking. Each line is one
-- write, so the two never mix.
io.stdout:setvbuf("line") -- flush after every line

-- The parent process's ID, from Linux's /proc/self/stat (the field after the state letter).
local function parent()
  local file = io.open("/proc/self/stat", "r")
  if not file then
    return nil
  end
  local stat = file:read("a")
  file:close()
  return stat:match("%) %a (%d+)")
end

if arg[1] == "--ticker" then
  local started_by = parent()
  local n = 1
  -- Tick until the main copy is gone (this process then has another parent).
  while os.execute("sleep 1") and parent() == started_by do
    io.write("tick ", n, "\n")
    n = n + 1
  end
  os.exit(0)
end

local function quote(word) -- for the shell
  return "'" .. word:gsub("'", "'\\''") .. "'"
end
-- arg[-1] is the Lua interpreter running this script, arg[0] the script.
local ticker = io.popen("exec " .. quote(arg[-1] or "lua") .. " " .. quote(arg[0]) .. " --ticker", "w")

for line in io.lines() do
  io.write("echo: ", line, "\n")
end
-- The client is gone: leave at once (closing the ticker's pipe would wait for it); the
-- ticker notices within a second, and websocketd stops the program's process group anyway.
os.exit(0)
