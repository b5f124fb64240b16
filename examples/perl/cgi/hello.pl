#!/usr/bin/env perl
# A CGI script: headers, an empty line, then the body.
# Run: websocketd --port=8080 --cgidir=. and open http://localhost:8080/hello.pl?name=you
use strict;
use warnings;

$| = 1;
print "Content-Type: text/plain; charset=utf-8\r\n\r\n";
print "Hello from a CGI script in Perl!\n";
print 'REQUEST_METHOD=', $ENV{REQUEST_METHOD} // '', "\n";
print 'QUERY_STRING=', $ENV{QUERY_STRING} // '', "\n";
