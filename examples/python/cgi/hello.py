#!/usr/bin/env python3
# A CGI script: headers, an empty line, then the body.
# Run: websocketd --port=8080 --cgidir=. and open http://localhost:8080/hello.py?name=you
import os
import sys

out = sys.stdout
out.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
out.write("Hello from a CGI script in Python!\n")
out.write("REQUEST_METHOD=%s\n" % os.environ.get("REQUEST_METHOD", ""))
out.write("QUERY_STRING=%s\n" % os.environ.get("QUERY_STRING", ""))
out.flush()
