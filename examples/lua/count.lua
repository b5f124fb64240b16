#!/usr/bin/env lua
-- Counts from 1 to 10, one number every half second. Run: websocketd --port=8080 ./count.lua
-- Standard Lua has no sleep of its own, so it asks the system's sleep command.
io.stdout:setvbuf("line") -- flush after every line

for i = 1, 10 do
  if i > 1 then
    os.execute("sleep 0.5")
  end
  print(i)
end
