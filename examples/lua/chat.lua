#!/usr/bin/env lua
-- A chat room: every line a client sends goes to every client, stamped with the time (UTC).
-- One copy serves the whole room:
--   websocketd --port=8080 --broadcast --broadcastinput=lines ./chat.lua
io.stdout:setvbuf("line") -- flush after every line

for line in io.lines() do
  if line ~= "" then
    io.write(os.date("!%H:%M:%S"), " ", line, "\n")
  end
end
