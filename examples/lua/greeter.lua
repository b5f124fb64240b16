#!/usr/bin/env lua
-- Answers every line it reads with "Hello, LINE!" until end of input. Run: websocketd --port=8080 ./greeter.lua
io.stdout:setvbuf("line") -- flush after every line

for line in io.lines() do
  io.write("Hello, ", line, "!\n")
end
