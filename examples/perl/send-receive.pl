#!/usr/bin/env perl
# Sends "tick N" every second and, at the same time, answers every line it reads with
# "echo: LINE". Run: websocketd --port=8080 ./send-receive.pl
# A forked child does the ticking; each print is one write of one line, so the two
# processes' lines never mix.
use strict;
use warnings;

binmode STDIN;
binmode STDOUT;
$| = 1;    # flush after every print

my $ticker = fork() // die "fork: $!";
if ($ticker == 0) {
    for (my $n = 1; ; $n++) {
        sleep 1;
        print "tick $n\n";
    }
}
while (my $line = <STDIN>) {
    chomp $line;
    print "echo: $line\n";
}
kill 'TERM', $ticker;
waitpid $ticker, 0;
exit 0;
