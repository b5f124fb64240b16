#!/bin/sh
# A CGI script: headers, an empty line, then the body.
# Run: websocketd --port=8080 --cgidir=. and open http://localhost:8080/hello.sh?name=you
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'Hello from a CGI script in shell!\n'
printf 'REQUEST_METHOD=%s\n' "$REQUEST_METHOD"
printf 'QUERY_STRING=%s\n' "$QUERY_STRING"
