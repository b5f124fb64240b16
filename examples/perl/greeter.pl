#!/usr/bin/env perl
# Answers every line it reads with "Hello, LINE!" until end of input. Run: websocketd --port=8080 ./greeter.pl
use strict;
use warnings;

binmode STDIN;
binmode STDOUT;
$| = 1;    # flush after every print
while (my $line = <STDIN>) {
    chomp $line;
    print "Hello, $line!\n";
}
exit 0;
