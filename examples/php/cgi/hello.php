#!/usr/bin/env php
<?php
// A CGI script: headers, an empty line, then the body (run by the PHP command line,
// which leaves the headers to the script).
// Run: websocketd --port=8080 --cgidir=. and open http://localhost:8080/hello.php?name=you
echo "Content-Type: text/plain; charset=utf-8\r\n\r\n";
echo "Hello from a CGI script in PHP!\n";
echo 'REQUEST_METHOD=', (string) getenv('REQUEST_METHOD'), "\n";
echo 'QUERY_STRING=', (string) getenv('QUERY_STRING'), "\n";
