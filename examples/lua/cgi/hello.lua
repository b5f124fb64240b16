#!/usr/bin/env lua
-- A CGI script: headers, an empty line, then the body.
-- Run: websocketd --port=8080 --cgidir=. and open http://localhost:8080/hello.lua?name=you
io.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
io.write("Hello from a CGI script in Lua!\n")
io.write("REQUEST_METHOD=", os.getenv("REQUEST_METHOD") or "", "\n")
io.write("QUERY_STRING=", os.getenv("QUERY_STRING") or "", "\n")
