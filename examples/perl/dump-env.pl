#!/usr/bin/env perl
# Prints its environment as NAME=value lines sorted by name. Run: websocketd --port=8080 ./dump-env.pl
use strict;
use warnings;

binmode STDOUT;
$| = 1;    # flush after every print
for my $name (sort keys %ENV) {
    print "$name=$ENV{$name}\n";
}
exit 0;
