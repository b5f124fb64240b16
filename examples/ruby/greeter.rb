#!/usr/bin/env ruby
# Answers every line it reads with "Hello, LINE!" until end of input. Run: websocketd --port=8080 ./greeter.rb

# Die quietly (no backtrace) when websocketd ends the session and stops us.
Signal.trap('INT', 'SYSTEM_DEFAULT')
Signal.trap('PIPE', 'SYSTEM_DEFAULT')
$stdout.sync = true # flush after every write
# Work on raw bytes so that any input, valid UTF-8 or not, goes through unchanged.
$stdin.binmode
$stdout.binmode

$stdin.each_line do |line|
  $stdout.write("Hello, #{line.chomp("\n")}!\n")
end
