#!/usr/bin/env perl
# A chat room: every line a client sends goes to every client, stamped with the time (UTC).
# One copy serves the whole room:
#   websocketd --port=8080 --broadcast --broadcastinput=lines ./chat.pl
use strict;
use warnings;
use POSIX qw(strftime);

binmode STDIN;
binmode STDOUT;
$| = 1;    # flush after every print
while (my $line = <STDIN>) {
    chomp $line;
    next if $line eq '';
    print strftime('%H:%M:%S', gmtime), " $line\n";
}
exit 0;
