#!/usr/bin/env perl
# Counts from 1 to 10, one number every half second. Run: websocketd --port=8080 ./count.pl
use strict;
use warnings;
use Time::HiRes qw(sleep);

$| = 1;    # flush after every print
for my $i (1 .. 10) {
    sleep 0.5 if $i > 1;
    print "$i\n";
}
exit 0;
