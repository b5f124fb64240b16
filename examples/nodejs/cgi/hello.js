#!/usr/bin/env node
// A CGI script: headers, an empty line, then the body.
// Run: websocketd --port=8080 --cgidir=. and open http://localhost:8080/hello.js?name=you
process.stdout.write('Content-Type: text/plain; charset=utf-8\r\n\r\n');
process.stdout.write('Hello from a CGI script in Node.js!\n');
process.stdout.write(`REQUEST_METHOD=${process.env.REQUEST_METHOD || ''}\n`);
process.stdout.write(`QUERY_STRING=${process.env.QUERY_STRING || ''}\n`);
