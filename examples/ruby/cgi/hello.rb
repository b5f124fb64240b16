#!/usr/bin/env ruby
# A CGI script: headers, an empty line, then the body.
# Run: websocketd --port=8080 --cgidir=. and open http://localhost:8080/hello.rb?name=you
$stdout.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
$stdout.write("Hello from a CGI script in Ruby!\n")
$stdout.write("REQUEST_METHOD=#{ENV.fetch('REQUEST_METHOD', '')}\n")
$stdout.write("QUERY_STRING=#{ENV.fetch('QUERY_STRING', '')}\n")
$stdout.flush
